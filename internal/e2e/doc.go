// Package e2e holds the end-to-end tests: they start the real server on
// loopback with real TLS, mint certificates in the test, and register
// devices over gRPC and REST. It has no non-test code.
package e2e
