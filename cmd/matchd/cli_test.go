package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matchd/matchd/engine"
)

// waitLog waits until the server has logged a line containing sub.
func (s *server) waitLog(t *testing.T, sub string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if l := s.logLine(sub); l != "" {
			return l
		}
		if time.Now().After(deadline) {
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("matchd never logged %q:\n%s", sub, strings.Join(s.log, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHelpAndVersion: --help is the settings on stdout, exit 0; --version
// the build, exit 0.
func TestHelpAndVersion(t *testing.T) {
	for _, h := range []string{"--help", "-h"} {
		out, err := exec.Command(matchdBin, h).Output()
		if err != nil || !strings.Contains(string(out), "usage: matchd") || !strings.Contains(string(out), "-web-ticker-window") {
			t.Errorf("%s: %v %q", h, err, out)
		}
	}
	out, err := exec.Command(matchdBin, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "matchd ") || !strings.Contains(string(out), "go1") {
		t.Errorf("--version: %v %q", err, out)
	}
	cmd := exec.Command(matchdBin, "--bogus")
	if err := cmd.Run(); cmd.ProcessState.ExitCode() != exitSettings {
		t.Errorf("a bad flag: %v", err)
	}
}

// TestNoConfigOutsideTheRepository: started where configs/demo.json is
// not, matchd says how to give a config instead of only "no such file".
func TestNoConfigOutsideTheRepository(t *testing.T) {
	cmd := exec.Command(matchdBin, "--data", filepath.Join(t.TempDir(), "d"))
	cmd.Dir = t.TempDir()
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != exitSettings || !strings.Contains(string(out), "--config FILE") {
		t.Errorf("exit %d: %s", cmd.ProcessState.ExitCode(), out)
	}
}

// TestBanner: the start banner shows the ports really bound and the
// config's own accounts (their tokens only for the demo config), and no
// admin line when the admin port is off (it used to print
// http:///healthz, and the demo tokens whatever the config).
func TestBanner(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.json")
	os.WriteFile(cfg, []byte(`{"accounts": [{"id": 7, "name": "carol", "token": "carol-secret"}],
  "instruments": [{"id": 1, "symbol": "XYZ", "tick_size": "0.5", "lot_size": "1"}]}`), 0o644)
	srv := startCmd(t, exec.Command(matchdBin, "--config", cfg, "--data", filepath.Join(dir, "d"), "--listen", "127.0.0.1:0",
		"--admin", "", "--web", "127.0.0.1:0"))
	srv.waitLog(t, "Press Ctrl-C")
	srv.mu.Lock()
	log := strings.Join(srv.log, "\n")
	srv.mu.Unlock()
	for _, want := range []string{"listening for orders on " + srv.addr, "Web view: http://" + srv.web + "/", "Accounts: 7 carol",
		"--account 7 --token TOKEN top XYZ"} {
		if !strings.Contains(log, want) {
			t.Errorf("the banner lacks %q:\n%s", want, log)
		}
	}
	for _, bad := range []string{"http:///", "carol-secret", "alice-demo", "Admin:"} {
		if strings.Contains(log, bad) {
			t.Errorf("the banner says %q:\n%s", bad, log)
		}
	}
}

// TestUncleanStartWarns: after a SIGKILL the next start says the last
// stop was not clean and how much it recovered from the journal; after a
// clean stop it does not.
func TestUncleanStartWarns(t *testing.T) {
	data := t.TempDir()
	srv := startServer(t, data)
	alice := newWebTrader(t, srv.addr, 1, "alice-demo")
	alice.order(engine.Sell, 1, 10100)
	alice.order(engine.Sell, 1, 10101)
	alice.c.Close()
	srv.cmd.Process.Kill()
	<-srv.exit
	again := startServer(t, data)
	l := again.waitLog(t, "the last stop was not clean")
	if !strings.Contains(l, "level=WARN") || !strings.Contains(l, "commands_after_snapshot=2") {
		t.Errorf("warning: %s", l)
	}
	if code := again.stop(t); code != 0 {
		t.Fatalf("stop: %d", code)
	}
	clean := startServer(t, data)
	clean.waitLog(t, "Press Ctrl-C")
	if l := clean.logLine("not clean"); l != "" {
		t.Errorf("after a clean stop: %s", l)
	}
}
