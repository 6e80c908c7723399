package system_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/broker"
	"github.com/supplier-accountability/sal/envelope"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
)

func TestMetricsCountWhatHappened(t *testing.T) {
	in := mustStart(t, t.TempDir())
	acme := in.tokens["supplier:acme-health"]
	in.do(t, "POST", "/v1/suppliers", acme, `{"supplier_id":"acme-health","name":"Acme"}`)
	in.do(t, "POST", "/v1/suppliers/acme-health/commitments", acme, `{"standard":"DICOM","version":"2024d","product":"PACS","target_date":"2027-06-30"}`)
	call(t, in, "GET", "/v1/suppliers/acme-health/scorecard", in.tokens["supplier:bright-records"], "")
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	raw, ev, _ := envelope.NewSigner(k).Seal(envelope.Draft{SupplierID: "acme-health", OccurredAt: time.Now(), Payload: &pb.SupplierRegistered{Name: "forged"}})
	if err := broker.NewPublisher(in.sys.JetStream()).Publish(context.Background(), broker.Subject(ev.Type, "acme-health"), ev.EventId, raw); err != nil {
		t.Fatal(err)
	}
	if _, err := in.sys.Ledger.Wait(context.Background(), ev.EventId); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(in.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	for _, want := range []string{
		`sal_events_published_total{type="commitment_made"} 1`,
		`sal_events_published_total{type="supplier_registered"} 1`,
		`sal_events_quarantined_total{reason="unknown_key"} 1`,
		`sal_http_requests_total{code="201",route="POST /v1/suppliers/{supplier}/commitments"} 1`,
		`sal_http_requests_total{code="403",route="GET /v1/suppliers/{supplier}/scorecard"} 1`,
		`sal_append_batch_seconds_bucket`,
		`sal_events_appended_total`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
}
