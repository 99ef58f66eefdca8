// Package archtest keeps the layout's dependency rules true. Its tests walk
// every package of the module (`go list ./...`), put each into a layer by
// its path, fail on a package that fits no layer (so a new package forces a
// decision), and check every package's non-test dependencies (`go list
// -deps`) against what its layer may import: the domain knows no transport,
// store or API; use cases see stores only as interfaces; stores never import
// a transport or the API; transports never import a store; only the wiring
// brings stores and transports together. The layer table is in
// archtest_test.go. It has no non-test code.
package archtest
