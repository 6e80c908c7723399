package audit

import "context"

// VerifyInPasses is Verify holding at most budget events' worth of
// scorecards, so that a small ledger is verified in several passes.
func VerifyInPasses(ctx context.Context, src Source, trust Trust, budget int) (Report, error) {
	return verify(ctx, src, trust, budget)
}
