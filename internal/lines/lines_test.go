package lines

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	br := bufio.NewReaderSize(strings.NewReader("a,b\n"+strings.Repeat("x", 40)+"\n\nlast"), 16)
	type got struct {
		line    string
		tooLong bool
	}
	var out []got
	for {
		l, long, err := Read(br)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got{string(l), long})
	}
	want := []got{{"a,b", false}, {"", true}, {"", false}, {"last", false}}
	if len(out) != len(want) {
		t.Fatalf("%+v, want %+v", out, want)
	}
	for i := range want {
		if out[i].tooLong != want[i].tooLong || !want[i].tooLong && out[i].line != want[i].line {
			t.Errorf("line %d: %+v, want %+v", i, out[i], want[i])
		}
	}
}
