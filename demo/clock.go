package demo

import (
	"sync"
	"time"
)

// Clock is a settable clock the system reads while demo data is seeded
// (it starts in the past and walks forward), then follows the wall clock.
//
// Pass its Now method as system.Config.Now; Seed moves it; call Release once
// seeding is done. It is safe for concurrent use.
type Clock struct {
	mu       sync.RWMutex
	t        time.Time
	released bool
}

// NewClock returns a clock pinned at start. For Seed, start the system with
// a clock pinned at or before end minus two years, so the ledger's append
// times never go backwards: NewClock(end.AddDate(-2, 0, 0)).
func NewClock(start time.Time) *Clock {
	return &Clock{t: start}
}

// Now is the simulated time while seeding; after Release, time.Now().
func (c *Clock) Now() time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.released {
		return time.Now()
	}
	return c.t
}

// Set pins the clock at t. After Release it has no effect on Now.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Release makes Now follow the wall clock from now on.
func (c *Clock) Release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.released = true
}

// Released reports whether Release has been called.
func (c *Clock) Released() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.released
}
