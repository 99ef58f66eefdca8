// Package wire reads and writes the protocol buffers wire format (tags,
// varints, length-delimited fields, zigzag) for the stores' compact records,
// with the standard library only: the store layer does not depend on the
// protobuf module, which is the API's (internal/archtest). The names and
// behaviour follow google.golang.org/protobuf/encoding/protowire; a
// Consume function returns a negative length for malformed input.
package wire

import (
	"encoding/binary"
	"math"
)

// Number is a field number.
type Number int32

// Type is a wire type.
type Type int8

// The wire types.
const (
	VarintType     Type = 0
	Fixed64Type    Type = 1
	BytesType      Type = 2
	StartGroupType Type = 3
	EndGroupType   Type = 4
	Fixed32Type    Type = 5
)

// maxNumber is the largest valid field number.
const maxNumber Number = 1<<29 - 1

// AppendVarint appends v as a varint.
func AppendVarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// AppendTag appends a field's tag.
func AppendTag(b []byte, num Number, typ Type) []byte {
	return AppendVarint(b, uint64(num)<<3|uint64(typ&7))
}

// AppendBytes appends v, length first.
func AppendBytes(b, v []byte) []byte { return append(AppendVarint(b, uint64(len(v))), v...) }

// AppendString appends s, length first.
func AppendString(b []byte, s string) []byte { return append(AppendVarint(b, uint64(len(s))), s...) }

// ConsumeVarint reads a varint: the value and its length, negative if
// malformed (truncated, or longer than ten bytes).
func ConsumeVarint(b []byte) (uint64, int) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, -1
	}
	return v, n
}

// ConsumeTag reads a tag: the field number, its wire type and the tag's
// length, negative if malformed or the number is out of range.
func ConsumeTag(b []byte) (Number, Type, int) {
	v, n := ConsumeVarint(b)
	if n < 0 || v>>3 == 0 || v>>3 > uint64(maxNumber) {
		return 0, 0, -1
	}
	return Number(v >> 3), Type(v & 7), n
}

// ConsumeBytes reads a length-delimited value: the value (a sub-slice of
// b) and the length read, negative if malformed or longer than b.
func ConsumeBytes(b []byte) ([]byte, int) {
	m, n := ConsumeVarint(b)
	if n < 0 || m > uint64(len(b)-n) || m > math.MaxInt32 {
		return nil, -1
	}
	return b[n : n+int(m)], n + int(m)
}

// ConsumeFieldValue returns the length of a field's value of type typ,
// negative if malformed. Groups are refused (the records never hold any).
func ConsumeFieldValue(_ Number, typ Type, b []byte) int {
	switch typ {
	case VarintType:
		_, n := ConsumeVarint(b)
		return n
	case BytesType:
		_, n := ConsumeBytes(b)
		return n
	case Fixed32Type:
		if len(b) < 4 {
			return -1
		}
		return 4
	case Fixed64Type:
		if len(b) < 8 {
			return -1
		}
		return 8
	default:
		return -1
	}
}

// EncodeZigZag maps a signed value to an unsigned one, small magnitudes to
// small values.
func EncodeZigZag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

// DecodeZigZag undoes EncodeZigZag.
func DecodeZigZag(x uint64) int64 { return int64(x>>1) ^ int64(x)<<63>>63 }
