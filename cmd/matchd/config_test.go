package main

import (
	"strings"
	"testing"
)

func TestDemoConfig(t *testing.T) {
	cfg, err := loadConfig("../../configs/demo.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Accounts) != 2 || len(cfg.Engine.Instruments) != 2 {
		t.Fatalf("%+v", cfg)
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
