// Package golden holds the frozen sample of every event type in every schema
// version ever written, and the tests that today's code still decodes,
// verifies and replays them.
//
// Each directory testdata/vN holds one coherent little history, as raw
// serialized Envelope bytes (one file per event, named NN-<type>.envelope),
// the public keys that signed it (keys.json) and what every file is expected
// to contain (manifest.json). The tests decode every file, check its type,
// id and supplier against the manifest, verify its signature with the key
// keys.json names, append the whole history in order to a real ledger and
// check the resulting scorecard and key registry. The bytes are never
// re-encoded: what is on disk is what the ledger stores.
//
// Golden files are never edited or regenerated once committed for a schema
// version. A new schema version adds a new directory (testdata/v2, ...) with
// its own generator function; the old directories stay as they are and must
// keep passing. The v1 files were written by
//
//	go test ./golden -run TestGenerateGolden -update
//
// which refuses to change a file that already exists with other content.
// The keys are derived from fixed public seeds: they are test keys, known to
// everyone, and must never be trusted by a real ledger.
package golden
