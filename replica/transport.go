package replica

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The transport carries raft messages between replicas over TCP: each
// replica listens on its peer address, and keeps one outgoing connection
// to every other replica, written by a goroutine of its own from a
// bounded queue. A message that finds the queue full or the peer
// unreachable is dropped and raft is told (ReportUnreachable): raft
// retransmits, so losing a message costs time, never safety.
//
// A frame is a 4-byte big-endian length and a marshalled raftpb.Message.
// A connection opens with a 24-byte hello: "MRAFT002", the sender's id,
// and the last index of its raft log then (a leader that knows the peer
// had more has found a peer that lost its log: see Replica.checkPeer).

const (
	helloMagic  = "MRAFT002"
	helloSize   = 24
	maxMsgBytes = 256 << 20 // a snapshot travels as one message
	peerQueue   = 4096
)

type transport struct {
	id    uint64
	log   *slog.Logger
	ln    net.Listener
	recv  func(*pb.Message) // called from the connection readers
	unrch func(id uint64)   // a message to id was dropped
	last  func() uint64     // the raft log's last index, for hellos
	hello func(from, last uint64)
	snap  func(to uint64, ok bool) // a snapshot message was written (or lost)

	mu    sync.Mutex
	peers map[uint64]*peer
	conns map[net.Conn]struct{}
	done  chan struct{}
	wg    sync.WaitGroup
}

type peer struct {
	id   uint64
	addr string
	q    chan outMsg
	stop chan struct{} // closed when the peer is dropped (it left the group)
}

// outMsg is a marshalled message for a peer; snap marks a snapshot, whose
// fate raft must be told (ReportSnapshot), or it waits for it for ever.
type outMsg struct {
	b    []byte
	snap bool
}

func newTransport(id uint64, listen string, peers map[uint64]string, log *slog.Logger,
	recv func(*pb.Message), unreachable func(uint64), last func() uint64, hello func(from, last uint64),
	snap func(to uint64, ok bool)) (*transport, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("replica: listen for peers on %s: %w", listen, err)
	}
	t := &transport{id: id, log: log, ln: ln, recv: recv, unrch: unreachable, last: last, hello: hello, snap: snap,
		peers: map[uint64]*peer{}, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	for pid, addr := range peers {
		if pid != id {
			t.setPeer(pid, addr)
		}
	}
	t.wg.Add(1)
	go t.accept()
	return t, nil
}

// setPeer starts (or, at a new address, restarts) the writer for peer id.
// Once the transport runs, only the raft goroutine calls setPeer, dropPeer
// and send (peers is its).
func (t *transport) setPeer(id uint64, addr string) {
	if p := t.peers[id]; p != nil {
		if p.addr == addr {
			return
		}
		t.dropPeer(id)
	}
	p := &peer{id: id, addr: addr, q: make(chan outMsg, peerQueue), stop: make(chan struct{})}
	t.peers[id] = p
	t.wg.Add(1)
	go t.runPeer(p)
}

// dropPeer stops writing to peer id (it left the group).
func (t *transport) dropPeer(id uint64) {
	if p := t.peers[id]; p != nil {
		close(p.stop)
		delete(t.peers, id)
	}
}

// Addr is the address the transport listens on.
func (t *transport) Addr() net.Addr { return t.ln.Addr() }

// send queues messages for their peers; it never blocks.
func (t *transport) send(msgs []*pb.Message) {
	for _, m := range msgs {
		p := t.peers[m.GetTo()]
		if p == nil {
			continue
		}
		b, err := proto.Marshal(m)
		if err != nil {
			t.log.Error("replica: marshal a raft message", "err", err)
			continue
		}
		snap := m.GetType() == pb.MsgSnap
		select {
		case p.q <- outMsg{b, snap}:
		default:
			t.unrch(p.id)
			if snap {
				t.snap(p.id, false)
			}
		}
	}
}

func (t *transport) runPeer(p *peer) {
	defer t.wg.Done()
	var c net.Conn
	var w *bufio.Writer
	backoff := 10 * time.Millisecond
	for {
		var m outMsg
		select {
		case <-t.done:
			if c != nil {
				c.Close()
			}
			return
		case <-p.stop:
			// The peer left the group. What was queued for it goes out
			// first: it holds the commit that tells the peer it was
			// removed (so that it stops rather than campaign for ever).
			if c != nil {
				c.SetWriteDeadline(time.Now().Add(time.Second))
				var err error
				for err == nil && len(p.q) > 0 {
					err = writeFrame(w, (<-p.q).b)
				}
				if err == nil {
					w.Flush()
				}
				c.Close()
			}
			return
		case m = <-p.q:
		}
		if c == nil {
			var err error
			c, err = net.DialTimeout("tcp", p.addr, 200*time.Millisecond)
			if err != nil {
				t.unrch(p.id)
				// Drop what is queued: raft sends again, and old
				// messages are of no use once the peer is back.
				if m.snap {
					t.snap(p.id, false)
				}
				for len(p.q) > 0 {
					if (<-p.q).snap {
						t.snap(p.id, false)
					}
				}
				select {
				case <-t.done:
					return
				case <-p.stop:
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 500*time.Millisecond)
				continue
			}
			backoff = 10 * time.Millisecond
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetNoDelay(true)
			}
			w = bufio.NewWriterSize(c, 64<<10)
			var hello [helloSize]byte
			copy(hello[:], helloMagic)
			binary.BigEndian.PutUint64(hello[8:], t.id)
			binary.BigEndian.PutUint64(hello[16:], t.last())
			w.Write(hello[:])
		}
		snaps, size := 0, len(m.b)
		if m.snap {
			snaps++
		}
		// A snapshot is written with time to spare: 2 s and 1 s a MiB.
		c.SetWriteDeadline(time.Now().Add(2*time.Second + time.Duration(len(m.b)>>20)*time.Second))
		err := writeFrame(w, m.b)
		for err == nil && len(p.q) > 0 && size < 4<<20 { // what else waits goes in the same write
			m = <-p.q
			if m.snap {
				snaps++
				c.SetWriteDeadline(time.Now().Add(2*time.Second + time.Duration(len(m.b)>>20)*time.Second))
			}
			size += len(m.b)
			err = writeFrame(w, m.b)
		}
		if err == nil {
			err = w.Flush()
		}
		for range snaps {
			t.snap(p.id, err == nil)
		}
		if err != nil {
			t.unrch(p.id)
			c.Close()
			c = nil
		}
	}
}

func writeFrame(w *bufio.Writer, b []byte) error {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

func (t *transport) accept() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			select {
			case <-t.done:
				return
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		t.mu.Lock()
		t.conns[c] = struct{}{}
		t.mu.Unlock()
		t.wg.Add(1)
		go t.read(c)
	}
}

func (t *transport) read(c net.Conn) {
	defer t.wg.Done()
	defer func() {
		t.mu.Lock()
		delete(t.conns, c)
		t.mu.Unlock()
		c.Close()
	}()
	r := bufio.NewReaderSize(c, 64<<10)
	var hello [helloSize]byte
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(r, hello[:]); err != nil || string(hello[:8]) != helloMagic {
		t.log.Warn("replica: a peer connection without a valid hello; closed", "remote", c.RemoteAddr())
		return
	}
	from := binary.BigEndian.Uint64(hello[8:])
	t.hello(from, binary.BigEndian.Uint64(hello[16:]))
	c.SetReadDeadline(time.Time{})
	var buf []byte
	for {
		var n [4]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return
		}
		size := binary.BigEndian.Uint32(n[:])
		if size > maxMsgBytes {
			t.log.Warn("replica: a peer message over the limit; connection closed", "from", from, "bytes", size)
			return
		}
		if cap(buf) < int(size) {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(r, buf); err != nil {
			return
		}
		m := &pb.Message{}
		if err := proto.Unmarshal(buf, m); err != nil {
			t.log.Warn("replica: an undecodable peer message; connection closed", "from", from, "err", err)
			return
		}
		if m.GetFrom() != from {
			t.log.Warn("replica: a peer message from another id than the connection's", "conn", from, "msg", m.GetFrom())
			return
		}
		t.recv(m)
	}
}

// close stops the listener, the peer writers and the readers.
func (t *transport) close() error {
	close(t.done)
	err := t.ln.Close()
	t.mu.Lock()
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// flush waits up to d for the peers' queues to empty (what was queued has
// been written to their connections, or dropped).
func (t *transport) flush(d time.Duration) {
	deadline := time.Now().Add(d)
	for _, p := range t.peers {
		for len(p.q) > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
}
