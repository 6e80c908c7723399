//go:build !linux

package ledger

// Only Linux releases the ledger's mapped pages; elsewhere the watch does
// not start (residentFile fails) and ReleaseMapped does nothing.

func releaseMapped(addr, n uintptr) error { return errReleaseUnsupported }

func residentFile() (int64, error) { return 0, errReleaseUnsupported }
