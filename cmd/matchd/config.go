package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/units"
)

// fileConfig is the configuration file, JSON. Durations are Go duration
// strings ("5s"), prices and sizes decimal strings.
type fileConfig struct {
	Accounts    []accountConfig          `json:"accounts"`
	Instruments []units.InstrumentConfig `json:"instruments"`
	DefaultSTP  string                   `json:"default_stp,omitempty"`
	// Server holds server settings by flag name ("listen", "fsync", ...),
	// each a JSON string, number or boolean. Flags and environment
	// variables override them.
	Server map[string]json.RawMessage `json:"server,omitempty"`
}

type accountConfig struct {
	ID    uint32 `json:"id"`
	Name  string `json:"name"`
	Token string `json:"token"`
	STP   string `json:"stp,omitempty"`
	// Operator accounts may change trading phases (matchctl admin).
	Operator bool `json:"operator,omitempty"`
}

// account is an account as the server uses it.
type account struct {
	ID    engine.AccountID
	Name  string
	Token string
}

// config is the validated configuration.
type config struct {
	Engine   engine.Config
	Accounts []account
	Server   map[string]string // the file's server settings, as flag values
}

// loadConfig reads and validates a configuration file, reporting every
// problem at once: syntax errors with their line and column, the rest by
// field name.
func loadConfig(path string) (*config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parseConfig(path, data)
}

func parseConfig(path string, data []byte) (*config, error) {
	var fc fileConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			line, col := position(data, se.Offset)
			return nil, fmt.Errorf("config: %s:%d:%d: %v", path, line, col, se)
		case errors.As(err, &te):
			line, col := position(data, te.Offset)
			return nil, fmt.Errorf("config: %s:%d:%d: field %s: %v", path, line, col, te.Field, te)
		}
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	if off := dec.InputOffset(); len(bytes.TrimSpace(data[off:])) > 0 {
		line, col := position(data, off+int64(len(data[off:])-len(bytes.TrimLeft(data[off:], " \t\r\n"))))
		return nil, fmt.Errorf("config: %s:%d:%d: unexpected data after the JSON object", path, line, col)
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: "+format, append([]any{path}, args...)...))
	}
	cfg := &config{Server: map[string]string{}}
	for name, raw := range fc.Server {
		var str string
		if err := json.Unmarshal(raw, &str); err == nil {
			cfg.Server[name] = str
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			bad("server.%s: %v", name, err)
			continue
		}
		switch v.(type) {
		case float64, bool:
			cfg.Server[name] = string(raw)
		default:
			bad("server.%s: want a string, number or boolean, not %s", name, raw)
		}
	}
	if fc.DefaultSTP != "" {
		m, ok := engine.ParseSTPMode(fc.DefaultSTP)
		if !ok {
			bad("default_stp %q is not one of cancel-resting, cancel-incoming, cancel-both", fc.DefaultSTP)
		}
		cfg.Engine.DefaultSTP = m
	}
	for i, in := range fc.Instruments {
		// The protocol carries each string with a one-byte length, and
		// symbols as ASCII.
		for _, f := range []struct{ name, v string }{{"symbol", in.Symbol}, {"tick_size", in.TickSize}, {"lot_size", in.LotSize}} {
			if len(f.v) > 255 || !printableASCII(f.v) {
				bad("instruments[%d]: %s must be at most 255 printable ASCII characters (%d bytes given)", i, f.name, len(f.v))
			}
		}
		ei, err := in.Engine()
		if err != nil {
			bad("instruments[%d]: %v", i, err)
		}
		cfg.Engine.Instruments = append(cfg.Engine.Instruments, ei)
	}
	if len(fc.Accounts) == 0 {
		bad("no accounts")
	}
	ids, names := map[uint32]bool{}, map[string]bool{}
	for i, a := range fc.Accounts {
		switch {
		case a.ID == 0:
			bad("accounts[%d]: id must be positive", i)
		case ids[a.ID]:
			bad("accounts[%d]: duplicate id %d", i, a.ID)
		}
		ids[a.ID] = true
		if a.Name == "" || names[a.Name] {
			bad("accounts[%d]: name %q empty or duplicate", i, a.Name)
		}
		names[a.Name] = true
		if len(a.Token) < 8 || len(a.Token) > 32 {
			bad("accounts[%d] (%s): token must be 8 to 32 bytes", i, a.Name)
		}
		if !printableASCII(a.Token) {
			// A NUL could never be sent: Login pads the token with NULs.
			bad("accounts[%d] (%s): token must be printable ASCII (no NUL, no control characters)", i, a.Name)
		}
		if a.STP != "" || a.Operator {
			var m engine.STPMode
			if a.STP != "" {
				var ok bool
				m, ok = engine.ParseSTPMode(a.STP)
				if !ok || m == engine.STPDefault {
					bad("accounts[%d] (%s): stp %q is not one of cancel-resting, cancel-incoming, cancel-both", i, a.Name, a.STP)
				}
			}
			cfg.Engine.Accounts = append(cfg.Engine.Accounts, engine.AccountDefaults{ID: engine.AccountID(a.ID), STP: m, Operator: a.Operator})
		}
		cfg.Accounts = append(cfg.Accounts, account{ID: engine.AccountID(a.ID), Name: a.Name, Token: a.Token})
	}
	ec := cfg.Engine
	ec.EnsureDefaults()
	if err := ec.Validate(); err != nil {
		errs = append(errs, err)
	}
	return cfg, errors.Join(errs...)
}

// printableASCII reports whether s is made of printable ASCII only.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// position converts a byte offset to a 1-based line and column.
func position(data []byte, off int64) (line, col int) {
	line, col = 1, 1
	for _, c := range data[:min(int(off), len(data))] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}
