package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDemoConfig(t *testing.T) {
	cfg, err := loadConfig("../../configs/demo.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Accounts) != 3 || len(cfg.Engine.Instruments) != 2 {
		t.Fatalf("%+v", cfg)
	}
	if ops := cfg.Engine.Accounts; len(ops) != 1 || ops[0].ID != 9 || !ops[0].Operator {
		t.Fatalf("the demo's operator: %+v", ops)
	}
	btc := cfg.Engine.Instruments[1]
	if btc.Symbol != "BTC-USD" || btc.StartPrice != 5_000_000 || btc.MaxQty != 10_000_000 {
		t.Fatalf("BTC-USD: %+v", btc)
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := parseConfig("x.json", []byte("{\n  \"accounts\": [\n    {\"id\": 1,, }\n]}"))
	if err == nil || !strings.Contains(err.Error(), "x.json:3:") {
		t.Fatalf("syntax error without a position: %v", err)
	}
	_, err = parseConfig("x.json", []byte(`{"accounts": [{"id": "one"}]}`))
	if err == nil || !strings.Contains(err.Error(), "x.json:1:") {
		t.Fatalf("type error without a position: %v", err)
	}
	_, err = parseConfig("x.json", []byte(`{"acounts": []}`))
	if err == nil || !strings.Contains(err.Error(), `unknown field "acounts"`) {
		t.Fatalf("unknown field: %v", err)
	}
	_, err = parseConfig("x.json", []byte(`{
  "accounts": [{"id": 1, "name": "a", "token": "short"}, {"id": 1, "name": "a", "token": "long-enough", "stp": "nope"}],
  "instruments": [{"id": 1, "symbol": "X", "tick_size": "0.01", "lot_size": "1", "start_price": "1.001"},
                  {"id": 1, "symbol": "X", "tick_size": "0", "lot_size": "1"}]
}`))
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"token must be", "duplicate id 1", "stp \"nope\"", "empty or duplicate",
		"start_price", "tick and lot sizes", "duplicate symbol"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

// writeConfig writes the demo config with a "server" object.
func writeConfig(t *testing.T, server string) string {
	t.Helper()
	data, err := os.ReadFile("../../configs/demo.json")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSpace(string(data))
	s = s[:len(s)-1] + `, "server": ` + server + "}"
	path := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSettingsPrecedence(t *testing.T) {
	path := writeConfig(t, `{"listen": "127.0.0.1:1001", "heartbeat": "2s", "fsync": false, "max-conns": 7}`)
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	load := func(args ...string) *settings {
		t.Helper()
		s, _, err := loadSettings(append([]string{"--config", path}, args...), getenv, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// The file over the defaults.
	if s := load(); s.listen != "127.0.0.1:1001" || s.heartbeat != 2*time.Second || s.fsync || s.maxConns != 7 ||
		s.idleTimeout != 15*time.Second {
		t.Fatalf("file: %+v", s)
	}
	// The environment over the file.
	env["MATCHD_LISTEN"], env["MATCHD_FSYNC"] = "127.0.0.1:1002", "true"
	if s := load(); s.listen != "127.0.0.1:1002" || !s.fsync || s.heartbeat != 2*time.Second {
		t.Fatalf("env: %+v", s)
	}
	// Flags over both.
	if s := load("--listen", "127.0.0.1:1003", "--fsync=false"); s.listen != "127.0.0.1:1003" || s.fsync {
		t.Fatalf("flags: %+v", s)
	}
	// MATCHD_CONFIG names the file when --config does not.
	env["MATCHD_CONFIG"] = path
	s, _, err := loadSettings(nil, getenv, io.Discard)
	if err != nil || s.config != path || s.maxConns != 7 {
		t.Fatalf("MATCHD_CONFIG: %+v %v", s, err)
	}
}

func TestSettingsReportEveryProblem(t *testing.T) {
	path := writeConfig(t, `{"heartbeat": "soon", "lisen": "x", "log-format": "xml", "fsync": [1]}`)
	env := map[string]string{"MATCHD_OUTBOUND_LIMIT": "lots", "MATCHD_MAX_CONNS": "0"}
	_, _, err := loadSettings([]string{"--config", path, "--idle-timeout", "1ms"}, func(k string) string { return env[k] }, io.Discard)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`server.heartbeat: invalid value "soon": want a duration`,
		`server.lisen: no such setting`,
		`log-format "xml"`,
		`server.fsync: want a string, number or boolean`,
		`MATCHD_OUTBOUND_LIMIT: invalid value "lots": want a whole number`,
		`max connections 0`,
		`idle timeout longer than the heartbeat`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "outbound limit 0") {
		t.Errorf("a value that did not parse was still used:\n%v", err)
	}
	if _, _, err := loadSettings([]string{"--no-such-flag"}, func(string) string { return "" }, io.Discard); !errors.Is(err, errUsage) {
		t.Fatalf("unknown flag: %v", err)
	}
}

// TestConfigInputsRefused: inputs that used to be accepted wrongly.
func TestConfigInputsRefused(t *testing.T) {
	base := `{"accounts": [{"id": 1, "name": "a", "token": "%s"}],
 "instruments": [{"id": 1, "symbol": "%s", "tick_size": "0.01", "lot_size": "1"%s}]}`
	cases := []struct{ name, cfg, want string }{
		{"trailing garbage", fmt.Sprintf(base, "long-enough", "X", "") + `{"more": 1}`, "x.json:2:82: unexpected data after the JSON object"},
		{"max_qty zero", fmt.Sprintf(base, "long-enough", "X", `, "max_qty": "0"`), `max_qty "0" must be positive`},
		{"negative max_open", fmt.Sprintf(base, "long-enough", "X", `, "max_open_per_account": -1`), "max_open_per_account -1 must be positive"},
		{"token with NUL", fmt.Sprintf(base, `long-enough\u0000`, "X", ""), "token must be printable ASCII"},
		{"long symbol", fmt.Sprintf(base, "long-enough", strings.Repeat("S", 300), ""), "symbol must be at most 255 printable ASCII characters (300 bytes given)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig("x.json", []byte(tc.cfg))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := parseConfig("x.json", []byte(fmt.Sprintf(base, "long-enough", "X", "")+"\n\n")); err != nil {
		t.Fatalf("trailing white space refused: %v", err)
	}
}

// TestConfigPhasesAndSchedule: the volatility band, its auction's length
// and the daily schedule are read from the instrument's fields; bad
// times are named.
func TestConfigPhasesAndSchedule(t *testing.T) {
	good := `{"accounts": [{"id": 1, "name": "a", "token": "aaaaaaaa", "operator": true}],
  "instruments": [{"id": 1, "symbol": "X", "tick_size": "0.01", "lot_size": "1", "start_price": "10.00",
    "volatility_bps": 200, "volatility_auction": "2s", "auction_at": "08:00", "open_at": "09:00:30", "close_at": "17:30"}]}`
	cfg, err := parseConfig("g.json", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	in := cfg.Engine.Instruments[0]
	if in.VolatilityBps != 200 || in.VolatilityAuction != int64(2*time.Second) || in.AuctionAt != int64(8*time.Hour) ||
		in.OpenAt != int64(9*time.Hour+30*time.Second) || in.CloseAt != int64(17*time.Hour+30*time.Minute) {
		t.Fatalf("%+v", in)
	}
	if a := cfg.Engine.Accounts; len(a) != 1 || !a[0].Operator {
		t.Fatalf("operator: %+v", a)
	}
	bad := strings.Replace(good, `"09:00:30"`, `"9 am"`, 1)
	bad = strings.Replace(bad, `"2s"`, `"-1s"`, 1)
	_, err = parseConfig("b.json", []byte(bad))
	if err == nil || !strings.Contains(err.Error(), "open_at") || !strings.Contains(err.Error(), "volatility_auction") {
		t.Fatalf("bad schedule and auction: %v", err)
	}
}
