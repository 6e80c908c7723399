package broker

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// storeCheckEvery is how often the embedded server's store is checked for
// a write error, and how soon after space returns JetStream is restarted.
const storeCheckEvery = time.Second

// probeSize is how much the store directory must accept, fsynced, before
// JetStream is restarted after a write error.
const probeSize = 1 << 20

// watchStore brings the embedded server's JetStream back after a write
// error. When the disk fills up, a single server's file store keeps the
// error ("no space left on device") and refuses every later write — it does
// not answer the publisher at all — until JetStream is restarted, even once
// space has returned. So every storeCheckEvery this asks the server's
// health check for a stream write error; when there is one and the store
// directory takes a fsynced probe file again, it restarts JetStream
// in-process, which recovers the streams and consumers from disk (a torn
// last record is dropped; everything acknowledged was fsynced), and makes
// the clients reconnect so their pull consumers resume at once (see
// kickClients). It returns when the server shuts down.
func watchStore(srv *server.Server, storeDir string, log *slog.Logger) {
	t := time.NewTicker(storeCheckEvery)
	defer t.Stop()
	var failing string
	for range t.C {
		if !srv.Running() {
			return
		}
		werr := storeWriteError(srv)
		switch {
		case werr == "":
			failing = ""
			continue
		case werr != failing:
			failing = werr
			log.Error("event stream cannot write: publishes fail until its disk has space again; JetStream is restarted by itself then", "err", werr)
		}
		if err := probe(storeDir); err != nil {
			continue // still full
		}
		log.Warn("restarting JetStream: its store can be written again", "store", storeDir, "after", werr)
		if err := srv.ShutdownJetStream(); err != nil {
			log.Error("restart JetStream: shut down", "err", err)
			continue
		}
		if !srv.Running() {
			return
		}
		if err := srv.EnableJetStream(&server.JetStreamConfig{StoreDir: storeDir}); err != nil {
			log.Error("restart JetStream: the event stream stays unavailable", "err", err)
			continue
		}
		if werr := storeWriteError(srv); werr != "" {
			log.Error("JetStream restarted but its store still reports a write error", "err", werr)
			continue
		}
		failing = ""
		log.Info("JetStream restarted: the event stream accepts writes again")
		kickClients(srv, log)
	}
}

// kickClients closes every client connection so each reconnects at once.
// A pull consumer's requests were lost with the old JetStream, and its
// client would otherwise notice only when heartbeats go missing (30s by
// default); on reconnecting it pulls again straight away.
func kickClients(srv *server.Server, log *slog.Logger) {
	cz, err := srv.Connz(&server.ConnzOptions{Limit: 1 << 20})
	if err != nil {
		log.Warn("list clients to reconnect after the JetStream restart", "err", err)
		return
	}
	for _, c := range cz.Conns {
		_ = srv.DisconnectClientByID(c.Cid)
	}
}

// storeWriteError is the write error a stream or consumer of srv is stuck
// on, or "".
func storeWriteError(srv *server.Server) string {
	h := srv.Healthz(&server.HealthzOptions{Details: true})
	for _, e := range h.Errors {
		if strings.Contains(e.Error, "write error") {
			return e.Error
		}
	}
	return ""
}

// probe writes, fsyncs and removes a file of probeSize bytes in dir.
func probe(dir string) error {
	f, err := os.CreateTemp(dir, ".space-probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(make([]byte, probeSize)); err != nil {
		return err
	}
	return f.Sync()
}

// slogLogger passes the embedded server's warnings and errors to a
// structured logger (its notices, debug and trace output are dropped).
type slogLogger struct{ log *slog.Logger }

var _ server.Logger = slogLogger{}

func (l slogLogger) Noticef(string, ...any) {}
func (l slogLogger) Debugf(string, ...any)  {}
func (l slogLogger) Tracef(string, ...any)  {}
func (l slogLogger) Warnf(format string, v ...any) {
	l.log.Warn("nats: " + fmt.Sprintf(format, v...))
}
func (l slogLogger) Errorf(format string, v ...any) {
	l.log.Error("nats: " + fmt.Sprintf(format, v...))
}
func (l slogLogger) Fatalf(format string, v ...any) {
	l.log.Error("nats: fatal: " + fmt.Sprintf(format, v...))
}
