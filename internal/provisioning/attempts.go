package provisioning

import (
	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/attempts"
	"github.com/zerotouch/zerotouch/internal/fault"
)

// AttemptRecorder takes refused device requests for the failed-attempt
// log (ADR 20); it must not block.
type AttemptRecorder interface {
	Record(attempts.Attempt)
}

// recordRefusal puts a refused request in the failed-attempt log. Not
// refusals: a webhook still deciding, the caller's own cancellation or
// deadline, the service's own failures, and a status lookup of a device
// that has no registration yet.
func (s *Service) recordRefusal(req *Request, step string, err error) {
	if s.Attempts == nil {
		return
	}
	switch k := fault.KindOf(err); {
	case fault.ReasonOf(err) == fault.Assigning, k == fault.Internal, k == fault.Unavailable,
		fault.ReasonOf(err) == fault.Canceled, fault.ReasonOf(err) == fault.DeadlineExceeded,
		step == "lookup" && k == fault.NotFound:
		return
	}
	s.Attempts.Record(attempts.Attempt{Time: s.Now(), RegistrationID: req.RegistrationID, Credential: credentialOf(req.Evidence),
		Source: attempts.SourceIP(req.Peer), Transport: string(req.Transport), Reason: string(fault.ReasonOf(err)), RequestID: req.RequestID})
}

// credentialOf names what a device presented: its leaf certificate's
// SHA-256, or its EK hash; "" for a SAS token or a TPM's answer.
func credentialOf(ev Evidence) string {
	switch e := ev.(type) {
	case X509Chain:
		if len(e.Chain) > 0 {
			return enrollment.Thumbprint(e.Chain[0].Raw)
		}
	case TPMBegin:
		return tpm.EKHash(e.EKPublic)
	case DPSTPMBegin:
		return tpm.EKHash(e.EKPublic)
	case DPSTPMAnswer:
		return tpm.EKHash(e.EKPublic)
	}
	return ""
}
