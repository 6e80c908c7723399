package envelope

import pb "github.com/supplier-accountability/sal/proto/accountability/v1"

// OpenByProto is Open decoding the envelope and event with proto.Unmarshal
// only, as the reference the direct readers must agree with.
func OpenByProto(raw []byte) (*Opened, error) {
	var env pb.Envelope
	ev := &pb.Event{}
	o := &Opened{}
	if err := open(raw, &env, ev, o, DecodePayload, false); err != nil {
		return nil, err
	}
	return o, nil
}

// ReadsDirectly says whether Open reads raw without proto.Unmarshal.
func ReadsDirectly(raw []byte) bool {
	body, _, ok := readEnvelope(raw)
	return ok && readEvent(body, &pb.Event{})
}
