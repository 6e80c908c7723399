package envelope

import pb "github.com/supplier-accountability/sal/proto/accountability/v1"

// OpenByProto is Open decoding the envelope and event with proto.Unmarshal
// only, as the reference the direct readers must agree with.
func OpenByProto(raw []byte) (*Opened, error) { return openNew(raw, false) }

// ReadsDirectly says whether Open reads raw without proto.Unmarshal.
func ReadsDirectly(raw []byte) bool {
	body, _, ok := readEnvelope(raw)
	return ok && readEvent(body, &pb.Event{})
}
