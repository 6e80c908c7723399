package rules

import (
	"fmt"

	"github.com/supplier-accountability/sal/scorecard"
	"github.com/supplier-accountability/sal/standards"
)

// The KPI ratings of the Procurement Act 2023 performance assessments.
const (
	Good                = "Good"
	ApproachingTarget   = "Approaching target"
	RequiresImprovement = "Requires improvement"
	Inadequate          = "Inadequate"
	Other               = "Other"
)

// RatingFormula is the published formula of rule R8, version 1.
const RatingFormula = `Counted as of the rating date: past-target commitments are those whose target date has passed and that were not withdrawn on or before it; of these, the assessed ones are those with an assessment in force (not void, not under dispute); the conformant share is (conformant + half of partially conformant) / assessed. Open breaches are counted by severity and escalation level; a breach whose assessment is under dispute is shown as under dispute and not counted.
Inadequate: any open breach at level 2, or 3 or more open major breaches, or a conformant share below 50%.
Requires improvement: otherwise, any open major breach, any open breach at level 1, or a conformant share below 80%.
Approaching target: otherwise, any open minor breach, or a conformant share below 100%.
Good: otherwise.
Cap: an open breach of a clinical-safety standard (DCB0129, DCB0160) limits the rating to Requires improvement at best, whatever the rest.
Other: a supplier with no commitments has nothing to rate.
Not assessed and not applicable are never failures: a commitment with no assessment in force is left out of the share (a missed target is a breach under R1 instead).`

// Inputs are the figures the rating is computed from.
type Inputs struct {
	Commitments          int     `json:"commitments"`
	PastTarget           int     `json:"past_target"`
	AssessedPastTarget   int     `json:"assessed_past_target"`
	ConformantPastTarget int     `json:"conformant_past_target"`
	PartialPastTarget    int     `json:"partially_conformant_past_target"`
	ConformantShare      float64 `json:"conformant_share"` // 1 when nothing is assessed yet
	OpenMinor            int     `json:"open_minor_breaches"`
	OpenMajor            int     `json:"open_major_breaches"`
	OpenLevel1           int     `json:"open_at_level_1"`
	OpenLevel2           int     `json:"open_at_level_2"`
	UnderDispute         int     `json:"breaches_under_dispute"`
	ClinicalSafetyOpen   int     `json:"open_clinical_safety_breaches"`
}

// Rating is a supplier's KPI rating with its explanation.
type Rating struct {
	Label       string   `json:"label"`
	AsOf        string   `json:"as_of"`
	RuleID      string   `json:"rule_id"`
	RuleVersion string   `json:"rule_version"`
	Inputs      Inputs   `json:"inputs"`
	Reasons     []string `json:"reasons"`
	Formula     string   `json:"formula"`
}

func disputed(c *scorecard.Card, assessmentID string) bool {
	if assessmentID == "" {
		return false
	}
	a := c.Assessment(assessmentID)
	return a != nil && a.Disputed
}

// Rate computes the KPI rating of card on date today (YYYY-MM-DD).
func Rate(c *scorecard.Card, today string) Rating {
	r := Rating{AsOf: today, RuleID: KPIRating.ID, RuleVersion: KPIRating.Version, Formula: RatingFormula, Reasons: []string{}}
	in := &r.Inputs
	in.Commitments = len(c.Commitments)
	for _, cm := range c.Commitments {
		if today <= cm.TargetDate || (cm.Withdrawal != nil && cm.Withdrawal.On <= cm.TargetDate) {
			continue
		}
		in.PastTarget++
		if a := cm.LatestAssessment; a != nil && !a.Disputed {
			in.AssessedPastTarget++
			switch a.Outcome {
			case "conformant":
				in.ConformantPastTarget++
			case "partially_conformant":
				in.PartialPastTarget++
			}
		}
	}
	in.ConformantShare = 1
	if in.AssessedPastTarget > 0 {
		in.ConformantShare = (float64(in.ConformantPastTarget) + 0.5*float64(in.PartialPastTarget)) / float64(in.AssessedPastTarget)
	}
	for _, b := range c.Breaches {
		if b.Status != scorecard.BreachOpen {
			continue
		}
		if disputed(c, b.AssessmentID) {
			in.UnderDispute++
			continue
		}
		if b.Severity == "major" {
			in.OpenMajor++
		} else {
			in.OpenMinor++
		}
		switch b.EscalationLevel {
		case 1:
			in.OpenLevel1++
		case 2:
			in.OpenLevel2++
		}
		if cm := c.Commitment(b.CommitmentID); cm != nil {
			if s, ok := standards.Lookup(cm.StandardID); ok && s.ClinicalSafety {
				in.ClinicalSafetyOpen++
			}
		}
	}
	pct := fmt.Sprintf("%.0f%%", in.ConformantShare*100)
	reason := func(s string, args ...any) { r.Reasons = append(r.Reasons, fmt.Sprintf(s, args...)) }
	switch {
	case in.Commitments == 0:
		r.Label = Other
		reason("no commitments to rate")
		return r
	case in.OpenLevel2 > 0 || in.OpenMajor >= 3 || in.ConformantShare < 0.5:
		r.Label = Inadequate
		if in.OpenLevel2 > 0 {
			reason("%d open breach(es) at level 2 (contract performance notice)", in.OpenLevel2)
		}
		if in.OpenMajor >= 3 {
			reason("%d open major breaches", in.OpenMajor)
		}
		if in.ConformantShare < 0.5 {
			reason("conformant share %s is below 50%%", pct)
		}
	case in.OpenMajor > 0 || in.OpenLevel1 > 0 || in.ConformantShare < 0.8:
		r.Label = RequiresImprovement
		if in.OpenMajor > 0 {
			reason("%d open major breach(es)", in.OpenMajor)
		}
		if in.OpenLevel1 > 0 {
			reason("%d open breach(es) at level 1 (notice to improve)", in.OpenLevel1)
		}
		if in.ConformantShare < 0.8 {
			reason("conformant share %s is below 80%%", pct)
		}
	case in.OpenMinor > 0 || in.ConformantShare < 1:
		r.Label = ApproachingTarget
		if in.OpenMinor > 0 {
			reason("%d open minor breach(es)", in.OpenMinor)
		}
		if in.ConformantShare < 1 {
			reason("conformant share %s is below 100%%", pct)
		}
	default:
		r.Label = Good
		reason("no open breaches; conformant share %s", pct)
	}
	if in.ClinicalSafetyOpen > 0 && (r.Label == Good || r.Label == ApproachingTarget) {
		r.Label = RequiresImprovement
		reason("capped: %d open clinical-safety breach(es)", in.ClinicalSafetyOpen)
	}
	if in.UnderDispute > 0 {
		reason("%d breach(es) under dispute, not counted", in.UnderDispute)
	}
	return r
}
