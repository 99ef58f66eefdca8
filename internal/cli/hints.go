package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Zerotouch serves gRPC and REST on different ports (default 8444 and
// 8443), and each answers a call meant for the other in a way that names
// neither: the gRPC port closes a plain HTTPS request (the client sees
// EOF), and the REST port answers a gRPC call with a JSON 404 (the client
// sees "unexpected content-type"). These hints name the likely cause.

// restHint explains a REST call's failure to get any HTTP answer from
// server, which is what the gRPC port gives.
func restHint(err error, server string) error {
	var re *RESTError
	if err == nil || errors.As(err, &re) {
		return err
	}
	// The gRPC server closes an HTTP/1.1 request's connection; net/http
	// reports that as EOF, or, when the close races its request, as a
	// "server closed idle connection" or a reset.
	if msg := err.Error(); errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(msg, "no application protocol") ||
		strings.Contains(msg, "malformed HTTP response") || strings.Contains(msg, "server closed idle connection") || strings.Contains(msg, "connection reset by peer") {
		return fmt.Errorf("%w\n%s closed the connection without an HTTP answer: it is likely the gRPC address (default port 8444); "+
			"--transport rest needs the REST (HTTPS) address, by default %s (--server or ZEROTOUCH_SERVER)", err, server, defaultRESTServer)
	}
	return err
}

// grpcHint is the likely cause of a gRPC status that an HTTP server which
// does not speak gRPC produced (the REST port), or "".
func grpcHint(st *status.Status) string {
	if (st.Code() == codes.Unimplemented || st.Code() == codes.Unknown || st.Code() == codes.Internal) &&
		strings.Contains(st.Message(), "unexpected content-type") {
		return "\nthe server answered with plain HTTP, not gRPC: the address is likely the REST (HTTPS) port (default 8443); " +
			"this command needs the gRPC address, by default " + defaultGRPCServer + " (--server or ZEROTOUCH_SERVER; device register also takes --transport rest)"
	}
	return ""
}
