package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"
)

func netDial(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }

// ownServer is the fresh matchd matchload starts when it is not given
// --addr.
type ownServer struct {
	bin, addr, data string
	cmd             *exec.Cmd
	exited          chan error
}

var readyRE = regexp.MustCompile(`msg="matchd: ready" orders=(\S+)`)

// findMatchd is the matchd binary to start: bin if given, else the one
// beside matchload's own executable, else matchd on PATH.
func findMatchd(bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "matchd")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("matchd"); err == nil {
		return p, nil
	}
	return "", errors.New("no --addr, and no matchd binary to start beside matchload or on PATH: " +
		"give --addr HOST:PORT of a running server, or --matchd BIN (make loadtest builds both)")
}

// startOwn starts a fresh matchd on a temporary data directory and
// loopback ports (no admin port, no web view) and waits until it is ready.
func startOwn(bin, config string, fsync bool) (*ownServer, error) {
	bin, err := findMatchd(bin)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(config); err != nil {
		return nil, fmt.Errorf("own server: config %s: %w (give --config, or run from the repository)", config, err)
	}
	data, err := os.MkdirTemp("", "matchload-data-")
	if err != nil {
		return nil, err
	}
	s := &ownServer{bin: bin, data: data, exited: make(chan error, 1)}
	s.cmd = exec.Command(bin, "--config", config, "--data", data, "--listen", "127.0.0.1:0", "--admin", "", "--web", "",
		"--fsync="+strconv.FormatBool(fsync))
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		os.RemoveAll(data)
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(data)
		return nil, fmt.Errorf("own server: %w", err)
	}
	addr := make(chan string, 1)
	var last []string
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := readyRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
			if len(last) < 20 {
				last = append(last, sc.Text())
			}
		}
		s.exited <- s.cmd.Wait()
	}()
	select {
	case s.addr = <-addr:
		return s, nil
	case err := <-s.exited:
		os.RemoveAll(data)
		return nil, fmt.Errorf("own server: %s exited before it was ready: %v\n%s", bin, err, joinLines(last))
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		os.RemoveAll(data)
		return nil, errors.New("own server: not ready within 30 s")
	}
}

// stop stops the server (SIGTERM, then SIGKILL after 10 s) and removes
// its data.
func (s *ownServer) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	os.RemoveAll(s.data)
}

func joinLines(ls []string) string {
	out := ""
	for _, l := range ls {
		out += "  " + l + "\n"
	}
	return out
}
