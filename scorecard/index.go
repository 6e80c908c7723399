package scorecard

// index finds a card's records by id, so that applying an event to the card
// of a supplier with a long history costs no more than applying it to a new
// one. It holds nothing of its own: every entry points at a record on the
// card, and it can always be rebuilt from the card's lists.
//
// A card from New or Decode has none; Apply builds it on first use and keeps
// it in step with every record it adds and every breach it closes. The
// exported lookups use it once built and scan the lists before, so reading
// a shared decoded card never writes to it.
type index struct {
	commitments map[string]*Commitment
	assessments map[string]assessed
	breaches    map[string]*Breach
	disputes    map[string]*Dispute
	reviews     map[string]*Review
	plans       map[string]struct{}
	// open counts the open breaches against each commitment, by
	// commitment id: a commitment with any is breached.
	open map[string]int
}

// assessed is an assessment and the commitment it assesses.
type assessed struct {
	a  *Assessment
	cm *Commitment
}

// indexed returns the card's index, building it from the card's lists the
// first time. Only Apply calls it: it writes to the card.
func (c *Card) indexed() *index {
	if c.idx != nil {
		return c.idx
	}
	ix := &index{
		commitments: make(map[string]*Commitment, len(c.Commitments)),
		assessments: map[string]assessed{},
		breaches:    make(map[string]*Breach, len(c.Breaches)),
		disputes:    make(map[string]*Dispute, len(c.Disputes)),
		reviews:     make(map[string]*Review, len(c.Reviews)),
		plans:       make(map[string]struct{}, len(c.Plans)),
		open:        map[string]int{},
	}
	for _, cm := range c.Commitments {
		ix.addCommitment(cm)
		for _, a := range cm.Assessments {
			ix.addAssessment(a, cm)
		}
	}
	for _, b := range c.Breaches {
		ix.addBreach(b)
	}
	for _, p := range c.Plans {
		ix.plans[p.ID] = struct{}{}
	}
	for _, d := range c.Disputes {
		ix.addDispute(d)
	}
	for _, r := range c.Reviews {
		ix.addReview(r)
	}
	c.idx = ix
	return ix
}

// The add methods keep the first record of an id, as a scan of the lists
// would find it, should a card stored long ago list an id twice.

func (ix *index) addCommitment(cm *Commitment) {
	if _, ok := ix.commitments[cm.ID]; !ok {
		ix.commitments[cm.ID] = cm
	}
}

func (ix *index) addAssessment(a *Assessment, cm *Commitment) {
	if _, ok := ix.assessments[a.ID]; !ok {
		ix.assessments[a.ID] = assessed{a, cm}
	}
}

// addBreach indexes a breach and, if it is open, counts it against its
// commitment, whether or not another breach has the same id.
func (ix *index) addBreach(b *Breach) {
	if _, ok := ix.breaches[b.ID]; !ok {
		ix.breaches[b.ID] = b
	}
	if b.Status == BreachOpen {
		ix.open[b.CommitmentID]++
	}
}

func (ix *index) addDispute(d *Dispute) {
	if _, ok := ix.disputes[d.ID]; !ok {
		ix.disputes[d.ID] = d
	}
}

func (ix *index) addReview(r *Review) {
	if _, ok := ix.reviews[r.ID]; !ok {
		ix.reviews[r.ID] = r
	}
}
