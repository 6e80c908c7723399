//go:build !unix

package bench

import "time"

// processCPU is 0 where the process's CPU time is not read: the report
// then leaves out the figures of cores busy.
func processCPU() time.Duration { return 0 }
