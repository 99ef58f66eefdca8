package wire

import (
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// TestSameAsProtowire: what this package writes and reads is what the
// protobuf module's protowire writes and reads (the test may import it;
// the store code may not).
func TestSameAsProtowire(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 300, 1 << 35, math.MaxUint64} {
		if got, want := AppendVarint(nil, v), protowire.AppendVarint(nil, v); string(got) != string(want) {
			t.Errorf("varint %d: %x, want %x", v, got, want)
		}
	}
	for _, v := range []int64{0, -1, 1, math.MinInt64, math.MaxInt64, -12345} {
		if EncodeZigZag(v) != protowire.EncodeZigZag(v) || DecodeZigZag(EncodeZigZag(v)) != v {
			t.Errorf("zigzag %d", v)
		}
	}
	b := AppendTag(nil, 7, BytesType)
	b = AppendBytes(b, []byte("hello"))
	b = AppendTag(b, 1<<20, VarintType)
	b = AppendVarint(b, 42)
	want := protowire.AppendTag(nil, 7, protowire.BytesType)
	want = protowire.AppendBytes(want, []byte("hello"))
	want = protowire.AppendTag(want, 1<<20, protowire.VarintType)
	want = protowire.AppendVarint(want, 42)
	if string(b) != string(want) {
		t.Fatalf("%x, want %x", b, want)
	}
	num, typ, n := ConsumeTag(b)
	if num != 7 || typ != BytesType || n != 1 {
		t.Fatalf("tag: %d %d %d", num, typ, n)
	}
	v, m := ConsumeBytes(b[n:])
	if string(v) != "hello" || m != 6 {
		t.Fatalf("bytes: %q %d", v, m)
	}
	// Malformed input: a negative length, never a panic.
	for _, bad := range [][]byte{nil, {0x80}, {0x0a, 0x05, 'a'}, {0x00}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		if _, _, n := ConsumeTag(bad); n >= 0 {
			if _, m := ConsumeBytes(bad[n:]); m >= 0 && bad[0] == 0x0a {
				t.Errorf("%x read as valid", bad)
			}
		}
	}
	if _, n := ConsumeBytes([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}); n >= 0 {
		t.Error("a length beyond the input was accepted")
	}
}
