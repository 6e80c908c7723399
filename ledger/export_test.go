package ledger

// SetRebuildChunk makes rebuilds write their staged cards every n bytes.
func (l *Ledger) SetRebuildChunk(n int) { l.rebuildChunk = n }

// SetRebuildObserver has fn called after each chunk a rebuild stages.
func (l *Ledger) SetRebuildObserver(fn func()) { l.rebuildStaged = fn }

// SetIDMergeAt replaces the idMergeAt bound.
func (l *Ledger) SetIDMergeAt(n int) { l.idMergeAt = n }
