// matchd's web view: one instrument's live book, depth, trades and
// candles over the WebSocket stream (docs/HTTP.md), the instrument list
// and the server panel over REST. Plain JavaScript, no build step.
'use strict';

const LEVELS = 15;        // ladder rows per side
const TAPE = 50;          // trades shown
const CANDLES = 60;       // candles drawn
const FRAME_MS = 100;     // at most 10 frames a second

// Exact decimal strings: values are scaled to BigInt at the larger of the
// two scales, added, and printed back, so volumes add up to the last lot.
function splitDec(s) {
  const neg = s.startsWith('-');
  if (neg) s = s.slice(1);
  const [i, f = ''] = s.split('.');
  return { neg, i, f };
}
function toBig(s, scale) {
  const { neg, i, f } = splitDec(s);
  const v = BigInt(i + f.padEnd(scale, '0').slice(0, scale));
  return neg ? -v : v;
}
function fromBig(v, scale) {
  const neg = v < 0n;
  let s = (neg ? -v : v).toString().padStart(scale + 1, '0');
  if (scale > 0) s = s.slice(0, -scale) + '.' + s.slice(-scale);
  return (neg ? '-' : '') + s;
}
function places(s) { return splitDec(s).f.length; }
function dadd(a, b) {
  const sc = Math.max(places(a), places(b));
  return fromBig(toBig(a, sc) + toBig(b, sc), sc);
}
function dcmp(a, b) {
  const sc = Math.max(places(a), places(b));
  const x = toBig(a, sc), y = toBig(b, sc);
  return x < y ? -1 : x > y ? 1 : 0;
}
function dmax(a, b) { return dcmp(a, b) >= 0 ? a : b; }
function dmin(a, b) { return dcmp(a, b) <= 0 ? a : b; }

// Times: RFC 3339 with nanoseconds; milliseconds are enough to bucket.
function ms(t) { return Date.parse(t.replace(/(\.\d{3})\d*/, '$1')); }
function clock(t) { return t.slice(11, 23); }

const view = {
  symbol: decodeURIComponent(location.pathname.startsWith('/i/') ? location.pathname.slice(3) : ''),
  seq: 0,
  loaded: false,
  phase: '',
  bids: new Map(), asks: new Map(),
  trades: [],
  candles: { '1s': [], '1m': [] },
  interval: '1s',
  dirty: true,
  ws: null,
  reconnects: 0,
  renders: 0,
  token: sessionStorage.getItem('matchd-token') || '',
};
window.matchdView = view; // for the end-to-end test and the curious

function setConn(up, text) {
  const el = document.getElementById('conn');
  el.className = 'conn ' + (up ? 'up' : 'down');
  el.textContent = text;
}

function connect() {
  if (!view.symbol) return;
  const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/v1/stream');
  view.ws = ws;
  ws.onopen = () => {
    setConn(true, 'live');
    subscribe();
  };
  ws.onmessage = ev => onMessage(JSON.parse(ev.data));
  ws.onclose = () => {
    if (view.ws !== ws) return;
    view.loaded = false;
    view.reconnects++;
    setConn(false, 'reconnecting');
    setTimeout(connect, Math.min(250 * view.reconnects, 3000));
  };
}

function subscribe() {
  view.loaded = false;
  view.ws.send(JSON.stringify({ op: 'subscribe', symbols: [view.symbol], channels: ['book', 'trades'] }));
}

// resync asks for a fresh snapshot after a gap in the sequence numbers.
function resync() {
  view.ws.send(JSON.stringify({ op: 'unsubscribe', symbols: [view.symbol] }));
  subscribe();
}

function onMessage(m) {
  if (m.type === 'error') {
    setConn(false, m.message);
    return;
  }
  if (m.symbol !== view.symbol) return;
  if (m.type === 'snapshot') {
    view.bids = new Map((m.bids || []).map(l => [l.price, l]));
    view.asks = new Map((m.asks || []).map(l => [l.price, l]));
    view.trades = m.trades.slice();
    view.candles = { '1s': m.candles_1s.slice(), '1m': m.candles_1m.slice() };
    view.phase = m.phase;
    view.seq = m.seq;
    view.loaded = true;
    view.dirty = true;
    soon();
    return;
  }
  if (m.type !== 'update' || !view.loaded || m.to <= view.seq) return; // before the snapshot, or in it
  if (m.from !== view.seq + 1) { // something was missed: start again
    view.loaded = false;
    resync();
    return;
  }
  view.seq = m.to;
  view.dirty = true;
  // A level with no orders left is gone.
  for (const l of m.bids || []) { if (l.orders === 0) view.bids.delete(l.price); else view.bids.set(l.price, l); }
  for (const l of m.asks || []) { if (l.orders === 0) view.asks.delete(l.price); else view.asks.set(l.price, l); }
  for (const t of m.trades || []) {
    view.trades.unshift(t);
    addCandle(view.candles['1s'], t, 1000);
    addCandle(view.candles['1m'], t, 60000);
  }
  if (view.trades.length > 500) view.trades.length = 500;
  if (m.phase) view.phase = m.phase;
  if ((m.trades || []).length || m.phase) soon(); // the list, volume and panel too, not a second later
}

// soon polls the instrument list, the ticker and the panel once, 200 ms
// after the market moved (at most that often).
let soonTimer = null;
function soon() {
  if (soonTimer) return;
  soonTimer = setTimeout(() => { soonTimer = null; pollInstruments(); pollTicker(); pollPanel(); }, 200);
}

// addCandle takes a trade into its interval's candle, as the server does.
function addCandle(list, t, step) {
  const start = Math.floor(ms(t.time) / step) * step;
  const last = list[list.length - 1];
  if (last && ms(last.start) >= start) {
    last.high = dmax(last.high, t.price);
    last.low = dmin(last.low, t.price);
    last.close = t.price;
    last.volume = dadd(last.volume, t.qty);
    last.trades++;
    return;
  }
  list.push({ start: new Date(start).toISOString().replace('.000Z', 'Z'), open: t.price, high: t.price, low: t.price,
    close: t.price, volume: t.qty, trades: 1 });
  if (list.length > 1000) list.shift();
}

function sortedSide(side, desc) {
  const ls = Array.from(side.values());
  ls.sort((a, b) => desc ? dcmp(b.price, a.price) : dcmp(a.price, b.price));
  return ls;
}

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function render() {
  if (!view.dirty) return;
  view.dirty = false;
  view.renders++;
  const bids = sortedSide(view.bids, true), asks = sortedSide(view.asks, false);
  document.getElementById('title').textContent = view.symbol || '—';
  const ph = document.getElementById('phase');
  ph.textContent = view.phase || '—';
  ph.className = 'phase ' + view.phase;
  document.getElementById('seq').textContent = view.loaded ? 'feed #' + view.seq : 'loading…';
  const last = view.trades[0];
  document.getElementById('last').textContent = last ? last.price : '—';
  let spread = '—', mid = '—';
  if (bids.length && asks.length) {
    const sc = Math.max(places(bids[0].price), places(asks[0].price));
    const b = toBig(bids[0].price, sc), a = toBig(asks[0].price, sc);
    spread = fromBig(a - b, sc);
    mid = fromBig((a + b) * 5n, sc + 1);
    if (mid.endsWith('0')) mid = mid.slice(0, -1); // a whole tick: the price's own decimals
  }
  document.getElementById('spread').textContent = spread;
  document.getElementById('mid').textContent = mid;
  document.getElementById('spreadcell').textContent = 'spread ' + spread;
  document.title = (last ? last.price + ' ' : '') + view.symbol + ' · matchd';

  const maxQ = Math.max(1, ...bids.slice(0, LEVELS).map(l => +l.qty), ...asks.slice(0, LEVELS).map(l => +l.qty));
  const row = (l, side) => {
    const tr = document.createElement('tr');
    tr.dataset.price = l.price;
    const q = cell(l.qty, 'num q');
    const bar = document.createElement('div');
    bar.className = 'bar';
    bar.style.width = (100 * +l.qty / maxQ).toFixed(1) + '%';
    q.appendChild(bar);
    if (side === 'bid') tr.append(cell(String(l.orders), 'num o'), q, cell(l.price, 'p'), cell(''), cell(''));
    else tr.append(cell(''), cell(''), cell(l.price, 'p'), q, cell(String(l.orders), 'num o'));
    return tr;
  };
  document.getElementById('asks').replaceChildren(...asks.slice(0, LEVELS).reverse().map(l => row(l, 'ask')));
  document.getElementById('bids').replaceChildren(...bids.slice(0, LEVELS).map(l => row(l, 'bid')));

  document.querySelector('#tape tbody').replaceChildren(...view.trades.slice(0, TAPE).map(t => {
    const tr = document.createElement('tr');
    tr.dataset.id = t.id;
    tr.append(cell(clock(t.time)), cell(t.price, 'num ' + t.aggressor), cell(t.qty, 'num'), cell(t.aggressor, t.aggressor));
    return tr;
  }));

  const cs = view.candles[view.interval];
  document.querySelector('#candletable tbody').replaceChildren(...cs.slice(-5).reverse().map(c => {
    const tr = document.createElement('tr');
    tr.append(cell(clock(c.start.replace('Z', '.000Z')).slice(0, 8)), cell(c.open, 'num'), cell(c.high, 'num'),
      cell(c.low, 'num'), cell(c.close, 'num'), cell(c.volume, 'num'), cell(String(c.trades), 'num'));
    return tr;
  }));
  drawDepth(bids, asks);
  drawCandles(cs.slice(-CANDLES));
}

function canvasCtx(id) {
  const cv = document.getElementById(id);
  const ctx = cv.getContext('2d');
  ctx.clearRect(0, 0, cv.width, cv.height);
  return [cv, ctx];
}

function drawDepth(bids, asks) {
  const [cv, ctx] = canvasCtx('depth');
  const n = 50;
  const b = bids.slice(0, n), a = asks.slice(0, n);
  if (!b.length && !a.length) return;
  const cum = ls => { let s = 0; return ls.map(l => [+l.price, s += +l.qty, l.price]); };
  const cb = cum(b), ca = cum(a);
  const prices = cb.concat(ca).map(p => p[0]);
  const lo = Math.min(...prices), hi = Math.max(...prices);
  const top = Math.max(1, ...cb.map(p => p[1]), ...ca.map(p => p[1]));
  const x = p => hi === lo ? cv.width / 2 : 8 + (p - lo) / (hi - lo) * (cv.width - 16);
  const y = q => cv.height - 16 - q / top * (cv.height - 28);
  const area = (pts, color) => {
    if (!pts.length) return;
    ctx.beginPath();
    ctx.moveTo(x(pts[0][0]), y(0));
    let prev = 0;
    for (const [p, q] of pts) { ctx.lineTo(x(p), y(prev)); ctx.lineTo(x(p), y(q)); prev = q; }
    ctx.lineTo(x(pts[pts.length - 1][0]), y(0));
    ctx.closePath();
    ctx.fillStyle = color + '40'; ctx.fill();
    ctx.strokeStyle = color; ctx.stroke();
  };
  area(cb, '#2ebd85');
  area(ca, '#f6465d');
  ctx.fillStyle = '#7d8a96';
  ctx.font = '11px monospace';
  const label = p => (cb.concat(ca).find(x => x[0] === p) || [0, 0, String(p)])[2];
  ctx.fillText(label(lo), 4, cv.height - 3);
  const hs = label(hi);
  ctx.fillText(hs, cv.width - 4 - ctx.measureText(hs).width, cv.height - 3);
  // The best bid and ask, where the two sides meet, and the deepest
  // cumulative quantity shown.
  if (cb.length && ca.length) {
    const mid = `${cb[0][2]} | ${ca[0][2]}`;
    const mx = (x(cb[0][0]) + x(ca[0][0])) / 2 - ctx.measureText(mid).width / 2;
    ctx.fillText(mid, Math.max(4, Math.min(mx, cv.width - 4 - ctx.measureText(mid).width)), cv.height - 3);
  }
  ctx.fillText('cum. qty ' + top.toLocaleString('en'), 4, 12);
}

function drawCandles(cs) {
  const [cv, ctx] = canvasCtx('candles');
  if (!cs.length) {
    ctx.fillStyle = '#7d8a96';
    ctx.font = '12px monospace';
    ctx.fillText('no trades yet', 10, 20);
    return;
  }
  const lo = Math.min(...cs.map(c => +c.low)), hi = Math.max(...cs.map(c => +c.high));
  const vmax = Math.max(...cs.map(c => +c.volume));
  const w = (cv.width - 60) / CANDLES;
  const ph = cv.height - 50;
  const y = p => hi === lo ? 10 + ph / 2 : 10 + (hi - p) / (hi - lo) * ph;
  const off = CANDLES - cs.length; // the newest at the right
  cs.forEach((c, i) => {
    const cx = 4 + (off + i) * w + w / 2;
    const up = +c.close >= +c.open;
    ctx.strokeStyle = ctx.fillStyle = up ? '#2ebd85' : '#f6465d';
    ctx.beginPath(); ctx.moveTo(cx, y(+c.high)); ctx.lineTo(cx, y(+c.low)); ctx.stroke();
    const t = Math.min(y(+c.open), y(+c.close)), h = Math.max(1, Math.abs(y(+c.open) - y(+c.close)));
    ctx.fillRect(cx - w * 0.35, t, w * 0.7, h);
    const vh = vmax ? +c.volume / vmax * 28 : 0;
    ctx.globalAlpha = 0.4; ctx.fillRect(cx - w * 0.35, cv.height - 4 - vh, w * 0.7, vh); ctx.globalAlpha = 1;
  });
  ctx.fillStyle = '#7d8a96';
  ctx.font = '11px monospace';
  const hiS = cs.reduce((m, c) => dmax(m, c.high), cs[0].high), loS = cs.reduce((m, c) => dmin(m, c.low), cs[0].low);
  ctx.fillText(hiS, cv.width - 52, 16);
  ctx.fillText(loS, cv.width - 52, 10 + ph);
  // A time axis: the first and the last candle's start (UTC).
  const t0 = clock(cs[0].start.replace('Z', '.000Z')).slice(0, 8);
  const t1 = clock(cs[cs.length - 1].start.replace('Z', '.000Z')).slice(0, 8);
  ctx.fillText(t0, 4 + off * w, cv.height - 34 + 14);
  if (cs.length > 1) ctx.fillText(t1, Math.min(4 + (off + cs.length - 1) * w, cv.width - 60 - ctx.measureText(t1).width), cv.height - 34 + 14);
}

async function pollInstruments() {
  try {
    const r = await fetch('/api/v1/instruments');
    const { instruments } = await r.json();
    if (!view.symbol && instruments.length) {
      history.replaceState(null, '', '/i/' + encodeURIComponent(instruments[0].symbol));
      view.symbol = instruments[0].symbol;
      connect();
    }
    document.querySelector('#instruments tbody').replaceChildren(...instruments.map(i => {
      const tr = document.createElement('tr');
      if (i.symbol === view.symbol) tr.className = 'on';
      const a = document.createElement('a');
      a.href = '/i/' + encodeURIComponent(i.symbol);
      a.textContent = i.symbol;
      const td = document.createElement('td');
      td.appendChild(a);
      tr.append(td, cell(i.best_bid ? i.best_bid.price : '—', 'num'), cell(i.best_ask ? i.best_ask.price : '—', 'num'),
        cell(i.last ? i.last.price : '—', 'num'));
      tr.onclick = () => { location.href = a.href; };
      return tr;
    }));
  } catch (e) { /* the server is restarting; try again */ }
}

async function pollTicker() {
  if (!view.symbol) return;
  try {
    const r = await fetch('/api/v1/ticker/' + encodeURIComponent(view.symbol));
    if (r.ok) document.getElementById('volume').textContent = (await r.json()).volume;
  } catch (e) { /* again later */ }
}

const panelNames = [
  ['sessions', 'sessions'], ['connections', 'connections'], ['commands_per_s', 'commands/s'],
  ['ack_p50_us', 'ack p50 ≤ µs'], ['ack_p99_us', 'ack p99 ≤ µs'], ['ack_p999_us', 'ack p99.9 ≤ µs'],
  ['durable_lag', 'durable lag'], ['sync_p50_us', 'journal sync p50 ≤ µs'], ['sync_p99_us', 'journal sync p99 ≤ µs'],
  ['sequenced_seq', 'sequenced'], ['fills', 'fills'], ['fsync', 'fsync'],
];

async function pollPanel() {
  const panel = document.getElementById('panel');
  try {
    const r = await fetch('/api/v1/server', { headers: view.token ? { Authorization: 'Bearer ' + view.token } : {} });
    if (r.status === 401) {
      panel.textContent = 'the server panel needs the admin token';
      document.getElementById('tokenform').hidden = false;
      return;
    }
    if (!r.ok) { panel.textContent = '—'; return; }
    const p = await r.json();
    document.getElementById('tokenform').hidden = true;
    panel.replaceChildren(...panelNames.map(([k, name]) => {
      const s = document.createElement('span');
      const b = document.createElement('b');
      const v = p[k];
      b.textContent = typeof v === 'number' && k === 'commands_per_s' ? Math.round(v).toLocaleString('en') : String(v);
      s.append(name + ' ', b);
      return s;
    }));
  } catch (e) { panel.textContent = 'server unreachable'; }
}

document.getElementById('tokenform').onsubmit = ev => {
  ev.preventDefault();
  view.token = document.getElementById('token').value;
  sessionStorage.setItem('matchd-token', view.token);
  pollPanel();
};
document.querySelectorAll('.tabs button').forEach(b => b.onclick = () => {
  view.interval = b.dataset.iv;
  document.querySelectorAll('.tabs button').forEach(x => x.classList.toggle('on', x === b));
  view.dirty = true;
});

setInterval(render, FRAME_MS);
setInterval(pollInstruments, 1000);
setInterval(pollTicker, 1000);
setInterval(pollPanel, 1000);
pollInstruments();
pollTicker();
pollPanel();
connect();
