package provisioning

import (
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// Observer receives what the registration use case counts (the wiring
// gives it Prometheus metrics). Its methods are called on the request's
// goroutine and must be cheap; they never change a decision.
type Observer interface {
	// Registered is called once per registration step (Register), where
	// the step's log line is written, with its outcome.
	Registered(o Outcome)
	// RateLimited is called when a rate-limit rule refuses a request
	// (reason RATE_LIMITED); rule is RulePerIP, RulePerRegistration or
	// RuleTPMChallengesPerIP.
	RateLimited(rule string)
	// WebhookCalled is called after each call of a custom allocation
	// webhook: how long it took, and its error (nil when it chose a hub).
	WebhookCalled(d time.Duration, err error)
	// WebhookFallback is called when a failed webhook's fallback policy
	// allocates instead.
	WebhookFallback(policy string)
}

// The rate-limit rules, named as their configuration keys
// (device.rate_limit.*).
const (
	RulePerIP              = "per_ip"
	RulePerRegistration    = "per_registration"
	RuleTPMChallengesPerIP = "tpm_challenges_per_ip"
)

// The outcomes of a registration step.
const (
	// OutcomeAssigned: the device has its hub.
	OutcomeAssigned = "assigned"
	// OutcomeAssigning: a custom allocation webhook is still deciding; the
	// device polls.
	OutcomeAssigning = "assigning"
	// OutcomeRefused: the device (or its enrollment) is refused, for a
	// reason the device is told.
	OutcomeRefused = "refused"
	// OutcomeError: the service could not decide (a store or webhook
	// failure, an internal error).
	OutcomeError = "error"
)

// Outcome is one registration step as metrics see it: bounded values
// only (no registration ID, device ID or address).
type Outcome struct {
	// Outcome is OutcomeAssigned, OutcomeAssigning, OutcomeRefused or
	// OutcomeError.
	Outcome     string
	Reason      fault.Reason // "" when assigned
	Attestation registry.AttestationType
	Transport   Transport
	Shard       string // "" unless assigned
	Duration    time.Duration
}

// OutcomeOf classifies a registration step's error.
func OutcomeOf(err error) string {
	switch k := fault.KindOf(err); {
	case err == nil:
		return OutcomeAssigned
	case fault.ReasonOf(err) == fault.Assigning:
		return OutcomeAssigning
	case k == fault.Internal || k == fault.Unavailable:
		return OutcomeError
	}
	return OutcomeRefused
}

// observe counts a registration step (Register calls it beside the log
// line).
func (s *Service) observe(req *Request, reg *registry.Registration, err error, d time.Duration) {
	if s.Observer == nil {
		return
	}
	o := Outcome{Outcome: OutcomeOf(err), Transport: req.Transport, Duration: d}
	if reg != nil {
		o.Attestation, o.Shard = reg.AttestationType, reg.Shard
	} else if req.Evidence != nil {
		o.Attestation = req.Evidence.attestation()
	}
	if err != nil {
		o.Reason = fault.ReasonOf(err)
	}
	s.Observer.Registered(o)
}

// limited counts a refusal by a rate-limit rule, and returns err.
func (s *Service) limited(rule string, err error) error {
	if err != nil && s.Observer != nil && fault.ReasonOf(err) == fault.RateLimited {
		s.Observer.RateLimited(rule)
	}
	return err
}
