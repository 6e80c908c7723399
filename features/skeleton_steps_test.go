package features_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cucumber/godog"

	"github.com/supplier-accountability/sal/broker"
	"github.com/supplier-accountability/sal/envelope"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
)

func registerSkeletonSteps(sc *godog.ScenarioContext, w *world) {
	sc.Step(`^today is (\d{4}-\d{2}-\d{2})$`, w.todayIs)
	sc.Step(`^supplier "([^"]*)" is registered as "([^"]*)"$`, w.registered)
	sc.Step(`^supplier "([^"]*)" commits to "([^"]*)" version "([^"]*)" for product "([^"]*)" by (\d{4}-\d{2}-\d{2})$`, w.commits)
	sc.Step(`^the commercial team assesses that commitment as "([^"]*)" with evidence "([^"]*)" by assessor "([^"]*)"$`, w.assesses)
	sc.Step(`^the scorecard of "([^"]*)" shows the commitment to "([^"]*)" version "([^"]*)" with status "([^"]*)"$`, w.showsCommitment)
	sc.Step(`^its latest assessment is "([^"]*)" with evidence "([^"]*)"$`, w.latestAssessment)
	sc.Step(`^supplier "([^"]*)" asks for the scorecard of "([^"]*)"$`, w.asksForScorecard)
	sc.Step(`^supplier "([^"]*)" tries to assess that commitment as "([^"]*)"$`, w.supplierTriesToAssess)
	sc.Step(`^the answer is (\d+)$`, w.answerIs)
	sc.Step(`^the answer does not mention "([^"]*)"$`, w.answerDoesNotMention)
	sc.Step(`^an event signed by a key the registry does not know says "([^"]*)" committed to "([^"]*)"$`, w.forgedCommitment)
	sc.Step(`^that event is in quarantine with reason "([^"]*)"$`, w.inQuarantine)
	sc.Step(`^the scorecard of "([^"]*)" lists (\d+) commitments?$`, w.listsCommitments)
}

func (w *world) todayIs(date string) error {
	d, err := time.Parse("2006-01-02", date)
	if err != nil {
		return err
	}
	// Mid-morning in England, well clear of midnight in either time zone.
	w.clock.set(d.Add(10 * time.Hour))
	return w.settle()
}

func (w *world) registered(id, name string) error {
	_, err := w.mustCall("supplier:"+id, "POST", "/v1/suppliers", map[string]string{"supplier_id": id, "name": name})
	return err
}

func (w *world) commits(supplier, standard, version, product, target string) error {
	out, err := w.mustCall("supplier:"+supplier, "POST", "/v1/suppliers/"+supplier+"/commitments", map[string]string{
		"standard": standard, "version": version, "product": product, "target_date": target,
	})
	if err != nil {
		return err
	}
	w.commitments[supplier] = out["commitment_id"].(string)
	return nil
}

// thatCommitment is the commitment the scenario made last.
func (w *world) thatCommitment() (supplier, id string, err error) {
	if len(w.commitments) != 1 {
		return "", "", fmt.Errorf("the scenario must have made commitments for exactly one supplier, has %d", len(w.commitments))
	}
	for s, c := range w.commitments {
		return s, c, nil
	}
	return "", "", nil
}

func (w *world) assesses(outcome, evidence, assessor string) error {
	supplier, cm, err := w.thatCommitment()
	if err != nil {
		return err
	}
	out, err := w.mustCall("commercial", "POST", "/v1/suppliers/"+supplier+"/commitments/"+cm+"/assessments", map[string]string{
		"outcome": outcome, "evidence_ref": evidence, "assessor": assessor,
	})
	if err != nil {
		return err
	}
	w.assessments[supplier] = out["assessment_id"].(string)
	return nil
}

func (w *world) showsCommitment(supplier, standard, version, status string) error {
	c, err := w.card(supplier)
	if err != nil {
		return err
	}
	for _, cm := range c.Commitments {
		if cm.StandardID == standard && cm.StandardVersion == version {
			if cm.Status != status {
				return fmt.Errorf("commitment to %s %s has status %q, want %q", standard, version, cm.Status, status)
			}
			return nil
		}
	}
	return fmt.Errorf("no commitment to %s %s on the scorecard of %s", standard, version, supplier)
}

func (w *world) latestAssessment(outcome, evidence string) error {
	supplier, cmID, err := w.thatCommitment()
	if err != nil {
		return err
	}
	c, err := w.card(supplier)
	if err != nil {
		return err
	}
	for _, cm := range c.Commitments {
		if cm.ID != cmID {
			continue
		}
		la := cm.LatestAssessment
		if la == nil {
			return fmt.Errorf("commitment %s shows no assessment", cmID)
		}
		if la.Outcome != outcome || la.EvidenceRef != evidence {
			return fmt.Errorf("latest assessment is %s with evidence %s, want %s with %s", la.Outcome, la.EvidenceRef, outcome, evidence)
		}
		return nil
	}
	return fmt.Errorf("commitment %s is not on the scorecard", cmID)
}

func (w *world) asksForScorecard(who, of string) error {
	return w.call("supplier:"+who, "GET", "/v1/suppliers/"+of+"/scorecard", nil)
}

func (w *world) supplierTriesToAssess(supplier, outcome string) error {
	_, cm, err := w.thatCommitment()
	if err != nil {
		return err
	}
	return w.call("supplier:"+supplier, "POST", "/v1/suppliers/"+supplier+"/commitments/"+cm+"/assessments", map[string]string{
		"outcome": outcome, "evidence_ref": "self-declared", "assessor": "ourselves",
	})
}

func (w *world) answerIs(code int) error {
	if w.lastCode != code {
		return fmt.Errorf("answer was %d %s, want %d", w.lastCode, w.lastBody, code)
	}
	return nil
}

func (w *world) answerDoesNotMention(s string) error {
	if strings.Contains(string(w.lastBody), s) {
		return fmt.Errorf("answer mentions %q: %s", s, w.lastBody)
	}
	return nil
}

func (w *world) forgedCommitment(supplier, standard string) error {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	raw, ev, err := envelope.NewSigner(key).Seal(envelope.Draft{
		SupplierID: supplier, OccurredAt: w.clock.Now(),
		Payload: &pb.CommitmentMade{CommitmentId: "cm_forged", StandardId: standard, StandardVersion: "2024d", Product: "x", TargetDate: "2027-12-31"},
	})
	if err != nil {
		return err
	}
	if err := broker.NewPublisher(w.jetStream()).Publish(context.Background(), broker.Subject(ev.Type, supplier), ev.EventId, raw); err != nil {
		return err
	}
	w.lastEvent = ev.EventId
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return w.waitFor(ctx, ev.EventId)
}

func (w *world) inQuarantine(code string) error {
	if _, err := w.mustCall("auditor", "GET", "/v1/audit/quarantine", nil); err != nil {
		return err
	}
	var q struct {
		Quarantine []struct {
			EventID string `json:"event_id"`
			Code    string `json:"code"`
			Reason  string `json:"reason"`
		} `json:"quarantine"`
	}
	if err := json.Unmarshal(w.lastBody, &q); err != nil {
		return err
	}
	for _, r := range q.Quarantine {
		if r.EventID == w.lastEvent {
			if r.Code != code {
				return fmt.Errorf("event quarantined as %s (%s), want %s", r.Code, r.Reason, code)
			}
			return nil
		}
	}
	return fmt.Errorf("event %s is not in quarantine", w.lastEvent)
}

func (w *world) listsCommitments(supplier string, n int) error {
	c, err := w.card(supplier)
	if err != nil {
		return err
	}
	if len(c.Commitments) != n {
		return fmt.Errorf("scorecard of %s lists %d commitments, want %d", supplier, len(c.Commitments), n)
	}
	return nil
}
