// Package archtest keeps the dependency rules of the layout true: domain
// packages import only the standard library, crypto and internal/fault;
// only the wiring imports storage backends; storage never speaks gRPC. It
// has no non-test code.
package archtest
