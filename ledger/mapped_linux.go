package ledger

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// releaseMapped tells the kernel the process no longer needs the mapped
// pages in [addr, addr+n): the next touch maps each again from the page
// cache. addr is bbolt's map, which a read transaction holds in place.
func releaseMapped(addr, n uintptr) error {
	if n == 0 {
		return nil
	}
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, addr, n, unix.MADV_DONTNEED); e != 0 {
		return fmt.Errorf("ledger: release mapped pages: %w", e)
	}
	return nil
}

// residentFile is the process's resident memory backed by files (and
// shared memory), in bytes: the third field of /proc/self/statm, in pages.
func residentFile() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	f := bytes.Fields(b)
	if len(f) < 3 {
		return 0, fmt.Errorf("ledger: /proc/self/statm: %q", b)
	}
	pages, err := strconv.ParseInt(string(f[2]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("ledger: /proc/self/statm: %w", err)
	}
	return pages * int64(os.Getpagesize()), nil
}
