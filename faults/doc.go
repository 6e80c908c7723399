// Package faults holds the tests that run the system as real processes and
// break it: SIGKILL of the one-process system while events stream in, and
// restarts that must keep every acknowledged event exactly once; a broker
// outage, lost cluster nodes, and a disk that fills up under a running
// system (on a tmpfs it mounts, skipping where it may not). It has no code
// of its own; the tests build cmd/sal and drive it as an operator would.
package faults
