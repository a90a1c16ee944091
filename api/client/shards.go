package client

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
)

// Shards is one account trading on a venue whose instruments are split
// over several groups (shards): each group is a matchd cluster (or a
// single node) with its own raft log, matching loop and leader, trading
// instruments no other group trades. Shards keeps a Client (a session)
// per group and sends each command to the group that trades its
// instrument; the shard map is read from the groups' own instrument
// directories at Dial.
//
// Order ids are a group's own (each numbers its orders 1, 2, 3, …), so a
// cancel or replace names the instrument as well. A mass cancel of every
// instrument is one command per group, each acknowledged on its own:
// there is no atomicity across groups (and none is needed: each book is
// independent).
type Shards struct {
	groups []*Client
	byInst map[engine.InstrumentID]int // index into groups
}

// ErrNoShard reports an instrument no group trades.
var ErrNoShard = errors.New("client: no group trades the instrument")

// DialShards logs in to every group: groups[i] is group i's order-entry
// addresses, comma-separated (as Config.Addr). cfg is used for each, with
// Addr replaced; a named session is one per group, named Session and the
// group's index (0–9), so Session has at most 7 characters. It fails if a
// group does not answer, or if two groups trade the same instrument.
func DialShards(ctx context.Context, cfg Config, groups []string) (*Shards, error) {
	if len(groups) == 0 || len(groups) > 10 {
		return nil, fmt.Errorf("client: shards: %d groups (1 to 10)", len(groups))
	}
	if cfg.Session != "" && len(cfg.Session) > 7 {
		return nil, fmt.Errorf("client: shards: session name %q: at most 7 characters (the group's digit is appended)", cfg.Session)
	}
	s := &Shards{byInst: map[engine.InstrumentID]int{}}
	fail := func(err error) (*Shards, error) {
		s.Close()
		return nil, err
	}
	for i, addr := range groups {
		c := cfg
		c.Addr = strings.TrimSpace(addr)
		if cfg.Session != "" {
			c.Session = fmt.Sprintf("%s%d", cfg.Session, i)
		}
		cl, err := Dial(ctx, c)
		if err != nil {
			return fail(fmt.Errorf("client: shards: group %d (%s): %w", i, c.Addr, err))
		}
		s.groups = append(s.groups, cl)
		dir, err := cl.Instruments(ctx)
		if err != nil {
			return fail(fmt.Errorf("client: shards: group %d's instruments: %w", i, err))
		}
		for _, in := range dir {
			if g, ok := s.byInst[in.ID]; ok {
				return fail(fmt.Errorf("client: shards: instrument %d (%s) is traded by groups %d and %d", in.ID, in.Symbol, g, i))
			}
			s.byInst[in.ID] = i
		}
	}
	return s, nil
}

// Groups returns the groups' clients, in the order given to DialShards.
func (s *Shards) Groups() []*Client { return s.groups }

// For returns the client of the group that trades inst.
func (s *Shards) For(inst engine.InstrumentID) (*Client, error) {
	g, ok := s.byInst[inst]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrNoShard, inst)
	}
	return s.groups[g], nil
}

// Submit enters an order at the group that trades its instrument.
func (s *Shards) Submit(ctx context.Context, m wire.NewOrder) (wire.Accepted, error) {
	c, err := s.For(m.Instrument)
	if err != nil {
		return wire.Accepted{}, err
	}
	if m.Ref == 0 {
		m.Ref = c.NextRef()
	}
	return c.Submit(ctx, m)
}

// Cancel cancels order id, entered on instrument inst.
func (s *Shards) Cancel(ctx context.Context, inst engine.InstrumentID, id engine.OrderID) (wire.Canceled, error) {
	c, err := s.For(inst)
	if err != nil {
		return wire.Canceled{}, err
	}
	return c.Cancel(ctx, id)
}

// MassCancel cancels the account's open orders on inst, or (inst 0) on
// every instrument of every group, one command per group. It returns how
// many were canceled in all; on an error, the groups that answered have
// canceled theirs.
func (s *Shards) MassCancel(ctx context.Context, inst engine.InstrumentID) (int, error) {
	if inst != 0 {
		c, err := s.For(inst)
		if err != nil {
			return 0, err
		}
		mc, err := c.MassCancel(ctx, inst)
		return int(mc.Count), err
	}
	n := 0
	var errs []error
	for i, c := range s.groups {
		mc, err := c.MassCancel(ctx, 0)
		if err != nil {
			errs = append(errs, fmt.Errorf("group %d: %w", i, err))
			continue
		}
		n += int(mc.Count)
	}
	return n, errors.Join(errs...)
}

// Close logs out of every group.
func (s *Shards) Close() error {
	var errs []error
	for _, c := range s.groups {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
