package ledger

// SetRebuildChunk makes rebuilds write their staged cards every n bytes.
func (l *Ledger) SetRebuildChunk(n int) { l.rebuildChunk = n }

// SetRebuildObserver has fn called after each chunk a rebuild stages.
func (l *Ledger) SetRebuildObserver(fn func()) { l.rebuildStaged = fn }

// SetIndexing replaces the idMergeAt, mergeInBatch and indexPart bounds.
func (l *Ledger) SetIndexing(at, inBatch, part int) { l.indexing = indexing{at, inBatch, part} }

// SetFlushParts makes flushes of cards write parts of n bytes, calling
// after (if set) once each part commits.
func (l *Ledger) SetFlushParts(n int, after func(last bool)) { l.flushPart, l.partWritten = n, after }

// FlushEvery is how long pending cards wait at most for a flush.
const FlushEvery = flushEvery
