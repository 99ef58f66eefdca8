// Package lines reads line-oriented input (import files, NDJSON bodies)
// with a bounded line length: a longer line is skipped to its end and
// reported, never buffered whole.
package lines

import (
	"bufio"
	"errors"
	"io"
)

// Read reads one line without its newline; a line longer than br's buffer
// is read to its end and reported as tooLong. The last line need not end
// in a newline. At the end of input it returns io.EOF.
func Read(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	line, err = br.ReadSlice('\n')
	for errors.Is(err, bufio.ErrBufferFull) {
		tooLong = true
		_, err = br.ReadSlice('\n')
	}
	switch {
	case err == nil:
		return line[:len(line)-1], tooLong, nil
	case errors.Is(err, io.EOF) && (len(line) > 0 || tooLong):
		return line, tooLong, nil
	}
	return nil, false, err
}
