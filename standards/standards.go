// Package standards is the catalogue of open standards suppliers commit to:
// each with its id, full name, owning body, version scheme, how conformance
// is assessed, and the legal basis that makes it binding.
package standards

import (
	"fmt"
	"slices"
	"strings"
)

// Legal bases.
const (
	// Section250 marks information standards published under section 250 of
	// the Health and Social Care Act 2012: "must comply" for bodies that use
	// them since July 2025, and able to bind IT suppliers directly.
	Section250 = "statutory: Health and Social Care Act 2012 s.250 information standard"
	// Contract marks standards binding through the contract and procurement
	// terms only.
	Contract = "contractual"
)

// Standard is one catalogue entry.
type Standard struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	Owner          string `json:"owner"`
	VersionScheme  string `json:"version_scheme"`
	CurrentExample string `json:"current_version_example"`
	AssessedBy     string `json:"assessed_by"`
	LegalBasis     string `json:"legal_basis"`
	ClinicalSafety bool   `json:"clinical_safety,omitempty"`
}

var catalogue = []Standard{
	{ID: "FHIR-R4", Name: "HL7 FHIR Release 4", Owner: "HL7 International", VersionScheme: "release", CurrentExample: "4.0.1", AssessedBy: "validation against profiles", LegalBasis: Contract},
	{ID: "FHIR-R4-UKCORE", Name: "FHIR UK Core implementation guide", Owner: "HL7 UK / NHS England", VersionScheme: "STU label and semver package", CurrentExample: "2.0.1", AssessedBy: "validation, clinical and technical assurance", LegalBasis: Contract},
	{ID: "SNOMED-CT-UK", Name: "SNOMED CT UK Edition (SCCI0034)", Owner: "NHS England", VersionScheme: "several releases a year", CurrentExample: "40.2.0", AssessedBy: "information-standard conformance", LegalBasis: Section250},
	{ID: "DMD", Name: "Dictionary of medicines and devices (SCCI0052)", Owner: "NHS England / NHSBSA", VersionScheme: "weekly releases", CurrentExample: "2026-11-23", AssessedBy: "release currency (no older than a set age)", LegalBasis: Section250},
	{ID: "DICOM", Name: "DICOM", Owner: "NEMA", VersionScheme: "editions", CurrentExample: "2024d", AssessedBy: "supplier's conformance statement", LegalBasis: Contract},
	{ID: "IHE-XDSB", Name: "IHE XDS.b profile", Owner: "IHE International", VersionScheme: "technical framework revision", CurrentExample: "ITI TF rev 20", AssessedBy: "connectathon or accredited test lab", LegalBasis: Contract},
	{ID: "WCAG22-AA", Name: "WCAG 2.2 level AA", Owner: "W3C", VersionScheme: "2.x", CurrentExample: "2.2", AssessedBy: "accessibility audit", LegalBasis: Contract},
	{ID: "ISO27001", Name: "ISO/IEC 27001:2022", Owner: "ISO/IEC", VersionScheme: "dated editions", CurrentExample: "2022", AssessedBy: "third-party certification, 3-year cycle", LegalBasis: Contract},
	{ID: "DCB0129", Name: "Clinical risk management: manufacture of health IT", Owner: "NHS England", VersionScheme: "version", CurrentExample: "4.2", AssessedBy: "safety case and hazard log by a Clinical Safety Officer", LegalBasis: Section250, ClinicalSafety: true},
	{ID: "DCB0160", Name: "Clinical risk management: deployment and use", Owner: "NHS England", VersionScheme: "version", CurrentExample: "3.2", AssessedBy: "safety case and hazard log by the deploying body's Clinical Safety Officer", LegalBasis: Section250, ClinicalSafety: true},
	{ID: "DSPT", Name: "Data Security and Protection Toolkit", Owner: "NHS England", VersionScheme: "annual (due 30 June)", CurrentExample: "2025-26", AssessedBy: "self-assessment; independent audit for larger suppliers", LegalBasis: Contract},
	{ID: "DTAC", Name: "Digital Technology Assessment Criteria", Owner: "NHS England", VersionScheme: "version (v2.0 from April 2026)", CurrentExample: "2.0", AssessedBy: "buyer assessment at procurement; sections pass/fail and scored", LegalBasis: Contract},
	{ID: "CE-PLUS", Name: "Cyber Essentials Plus", Owner: "NCSC / IASME", VersionScheme: "certificate valid 12 months", CurrentExample: "2026", AssessedBy: "independent test", LegalBasis: Contract},
	{ID: "NHSNUMBER", Name: "NHS Number standard (ISB0149)", Owner: "NHS England", VersionScheme: "amendment number", CurrentExample: "Amd 37/2021", AssessedBy: "information-standard conformance", LegalBasis: Section250},
	{ID: "NHSLOGIN", Name: "Identity verification and authentication (DAPB3051) / NHS login", Owner: "NHS England", VersionScheme: "semver", CurrentExample: "1.0.0", AssessedBy: "onboarding assurance", LegalBasis: Section250},
	{ID: "GPCONNECT", Name: "GP Connect capabilities", Owner: "NHS England", VersionScheme: "specification versions", CurrentExample: "1.6.2", AssessedBy: "conformance assessment list with gates", LegalBasis: Contract},
}

// All returns the catalogue, in catalogue order.
func All() []Standard { return slices.Clone(catalogue) }

// Lookup finds a standard by id (case-insensitive).
func Lookup(id string) (Standard, bool) {
	for _, s := range catalogue {
		if strings.EqualFold(s.ID, id) {
			return s, true
		}
	}
	return Standard{}, false
}

// IDs lists every id, for error messages.
func IDs() []string {
	ids := make([]string, len(catalogue))
	for i, s := range catalogue {
		ids[i] = s.ID
	}
	return ids
}

// ErrUnknown describes an id missing from the catalogue.
func ErrUnknown(id string) error {
	return fmt.Errorf("unknown standard %q; known: %s", id, strings.Join(IDs(), ", "))
}
