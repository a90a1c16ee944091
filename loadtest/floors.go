package loadtest

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"
)

// The floors: what this machine costs before matchd does anything. Every
// latency figure is judged against them, measured in the same run.

// PingPongSize is the message size of the loopback floor: about one
// NewOrder frame.
const PingPongSize = 64

// Echo serves ln until it is closed: every connection gets back what it
// sends. The ping-pong floor runs it in another process.
func Echo(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

// PingPong measures n round trips of a PingPongSize message to the echo
// server at addr, one in flight, and returns the histogram of round-trip
// nanoseconds.
func PingPong(addr string, n int) (*hdrhistogram.Histogram, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("loadtest: ping-pong: %w", err)
	}
	defer c.Close()
	defer precise()()
	h := newHist()
	msg := make([]byte, PingPongSize)
	back := make([]byte, PingPongSize)
	c.SetDeadline(time.Now().Add(time.Minute))
	for i := -n / 10; i < n; i++ { // the first tenth warms up
		t0 := time.Now()
		if _, err := c.Write(msg); err != nil {
			return nil, fmt.Errorf("loadtest: ping-pong: %w", err)
		}
		if _, err := io.ReadFull(c, back); err != nil {
			return nil, fmt.Errorf("loadtest: ping-pong: %w", err)
		}
		if i >= 0 {
			h.RecordValue(max(time.Since(t0).Nanoseconds(), 1_000))
		}
	}
	return h, nil
}

// Fdatasync measures n appends of a 4 KiB block to a new file in dir, each
// followed by fdatasync: the cost of making a small journal write durable
// on dir's filesystem. The file is removed afterwards.
func Fdatasync(dir string, n int) (*hdrhistogram.Histogram, error) {
	f, err := os.CreateTemp(dir, "matchd-fdatasync-*")
	if err != nil {
		return nil, fmt.Errorf("loadtest: fdatasync floor: %w", err)
	}
	defer os.Remove(filepath.Join(dir, filepath.Base(f.Name())))
	defer f.Close()
	block := make([]byte, 4096)
	h := newHist()
	for i := -n / 10; i < n; i++ {
		block[0] = byte(i)
		t0 := time.Now()
		if _, err := f.Write(block); err != nil {
			return nil, fmt.Errorf("loadtest: fdatasync floor: %w", err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return nil, fmt.Errorf("loadtest: fdatasync floor: %w", err)
		}
		if i >= 0 {
			h.RecordValue(max(time.Since(t0).Nanoseconds(), 1_000))
		}
	}
	return h, nil
}

// PacedEcho is the open-loop floor: for d it sends a PingPongSize message
// rate times a second to the echo server at addr on the same schedule and
// sender as Run (kernel sleep, then spin), and measures each message's
// return from its intended send time. A pause of the machine itself (the
// hypervisor, the kernel, the other process) shows in its tail exactly as
// it would in an open-loop run against matchd.
func PacedEcho(addr string, rate float64, d time.Duration) (*hdrhistogram.Histogram, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("loadtest: paced echo: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(d + 10*time.Second))
	start := time.Now().Add(50 * time.Millisecond)
	sched := NewSchedule(start, rate)
	end := start.Add(d)
	n := int64(d.Seconds() * rate)
	h := newHist()
	done := make(chan error, 1)
	go func() { // receiver: message k carries k; it was due at sched.Due(k)
		buf := make([]byte, PingPongSize)
		for got := int64(0); got < n; got++ {
			if _, err := io.ReadFull(c, buf); err != nil {
				done <- err
				return
			}
			k := int64(binary.LittleEndian.Uint64(buf))
			h.RecordValue(max(time.Since(sched.Due(k)).Nanoseconds(), 1_000))
		}
		done <- nil
	}()
	var out []byte
	msg := make([]byte, PingPongSize)
	// The last message is due just before start+d; the 1 ms margin lets
	// Pace take it before it stops.
	sched.Pace(end.Add(time.Millisecond), 10*time.Microsecond, func(_ time.Time, first, cnt int64) bool {
		out = out[:0]
		for k := first; k < first+cnt && k < n; k++ {
			binary.LittleEndian.PutUint64(msg, uint64(k))
			out = append(out, msg...)
		}
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return false // the receiver sees the error
			}
		}
		return first+cnt < n
	})
	if err := <-done; err != nil {
		return nil, fmt.Errorf("loadtest: paced echo: %w", err)
	}
	return h, nil
}
