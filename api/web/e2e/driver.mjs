// A headless Chromium for cmd/matchd's TestWebViewInChromium: one JSON
// command a line on stdin, one JSON answer a line on stdout.
//
//   {"op":"open","url":"http://127.0.0.1:PORT/i/AAPL"}
//   {"op":"state"}                 what the page shows (ladder, tape, candles)
//   {"op":"drop"}                  close the page's WebSocket (it reconnects)
//   {"op":"interval","iv":"1m"}    click a candle interval tab
//   {"op":"shot","path":"FILE"}    save a screenshot
//   {"op":"quit"}
import { chromium } from 'playwright-core';
import readline from 'node:readline';

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
const pageErrors = [];   // uncaught exceptions: bugs
const consoleErrors = []; // failed requests while the server restarts, among others
page.on('pageerror', e => pageErrors.push(String(e)));
page.on('console', m => { if (m.type() === 'error') consoleErrors.push(m.text()); });

async function handle(cmd) {
  switch (cmd.op) {
    case 'open':
      await page.goto(cmd.url);
      return { ok: true };
    case 'state': {
      // One evaluation: a consistent picture of one rendered frame.
      const st = await page.evaluate(() => {
        const rows = sel => Array.from(document.querySelectorAll(sel)).map(tr => Array.from(tr.children).map(td => td.textContent));
        const text = sel => document.querySelector(sel).textContent;
        const v = window.matchdView;
        return {
          seq: v.seq, loaded: v.loaded, renders: v.renders, reconnects: v.reconnects,
          conn: text('#conn'), title: text('#title'), phase: text('#phase'), last: text('#last'), spread: text('#spread'),
          asks: rows('#asks tr'), bids: rows('#bids tr'), tape: rows('#tape tbody tr'),
          candles: rows('#candletable tbody tr'), instruments: rows('#instruments tbody tr'),
        };
      });
      return { ...st, pageErrors, consoleErrors };
    }
    case 'drop':
      await page.evaluate(() => window.matchdView.ws.close());
      return { ok: true };
    case 'interval':
      await page.click(`.tabs button[data-iv="${cmd.iv}"]`);
      return { ok: true };
    case 'shot':
      await page.screenshot({ path: cmd.path, fullPage: true });
      return { ok: true };
    case 'quit':
      await browser.close();
      process.exit(0);
  }
  return { error: 'unknown op ' + cmd.op };
}

const rl = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on('line', line => {
  chain = chain.then(async () => {
    let out;
    try {
      out = await handle(JSON.parse(line));
    } catch (e) {
      out = { error: String(e) };
    }
    process.stdout.write(JSON.stringify(out) + '\n');
  });
});
rl.on('close', () => chain.then(() => browser.close()));
process.stdout.write(JSON.stringify({ ready: true }) + '\n');
