package record

import (
	"math/rand/v2"
	"testing"
)

// FuzzDecodeCompact: stored bytes that are not what the encoder wrote (a
// truncated, corrupted or crafted record or log entry) give an error,
// never a panic; what does decode encodes and decodes again.
func FuzzDecodeCompact(f *testing.F) {
	g := gen{rand.New(rand.NewPCG(5, 6))}
	for range 8 {
		reg := g.registration()
		f.Add(EncodeDevice(reg, g.identityOf(reg)))
		ev := &Event{V: Version, Shard: "s1", Kind: "created", Time: g.time(), Identity: g.identity()}
		raw, err := ev.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte{CompactV1})
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if reg, id, err := DecodeDevice(raw); err == nil {
			if _, _, err := DecodeDevice(EncodeDevice(reg, id)); err != nil {
				t.Fatalf("a decoded device does not decode again: %v", err)
			}
		}
		if ev, err := DecodeEvent(raw, "s1"); err == nil && ev.Identity != nil {
			again, err := ev.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeEvent(again, "s1"); err != nil {
				t.Fatalf("a decoded event does not decode again: %v", err)
			}
		}
		var r Registration
		_ = r.UnmarshalBinary(raw)
		var i Identity
		_ = i.UnmarshalBinary(raw)
	})
}
