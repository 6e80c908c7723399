package demo

// The demo's cast: every supplier, person and product name here is made up,
// and the supplier names say so.

type supplierInfo struct {
	id, name string
	primary  string // the product it is known for
}

var suppliers = []supplierInfo{
	{"meadow-health", "Fictional Meadow Health Systems Ltd", "Electronic patient record"},
	{"bridge-records", "Example Bridge Records plc", "Shared care record"},
	{"lantern-imaging", "Demo Lantern Imaging Ltd", "PACS viewer"},
	{"quillfeather-care", "Quillfeather Digital Care (Fictional) Ltd", "Community care record"},
	{"placeholder-pathology", "Placeholder Pathology Informatics Ltd", "Pathology LIMS"},
	{"sample-street", "Sample Street Software (Demo) Ltd", "Patient portal"},
	{"makebelieve-records", "Make-Believe Medical Records Ltd", "Mental health record"},
	{"notreal-noteware", "NotReal Noteware plc", "Digital dictation"},
	{"imaginary-integration", "Imaginary Integration Co. (Demo)", "Integration engine"},
	{"pretend-pharmacy", "Pretend Pharmacy Systems Ltd", "ePrescribing"},
	{"mock-clinical", "Mock Clinical Example Ltd", "Maternity information system"},
	{"dummy-digital", "Dummy Data Digital Health Ltd", "Virtual ward platform"},
}

// SupplierIDs lists the ids of the suppliers Seed registers (the same for
// every seed), e.g. to issue them tokens.
func SupplierIDs() []string {
	ids := make([]string, len(suppliers))
	for i, s := range suppliers {
		ids[i] = s.id
	}
	return ids
}

// product is a kind of system a supplier sells, with the standards a buyer
// would plausibly hold it to.
type product struct {
	name      string
	standards []string
}

var products = []product{
	{"ePrescribing", []string{"DMD", "SNOMED-CT-UK", "FHIR-R4-UKCORE", "DCB0129", "NHSNUMBER", "DTAC", "WCAG22-AA"}},
	{"Patient portal", []string{"NHSLOGIN", "WCAG22-AA", "FHIR-R4-UKCORE", "DTAC", "DSPT", "CE-PLUS"}},
	{"PACS viewer", []string{"DICOM", "IHE-XDSB", "WCAG22-AA", "DCB0129", "ISO27001", "NHSNUMBER"}},
	{"Integration engine", []string{"FHIR-R4", "FHIR-R4-UKCORE", "IHE-XDSB", "NHSNUMBER", "ISO27001", "CE-PLUS"}},
	{"Community care record", []string{"SNOMED-CT-UK", "GPCONNECT", "NHSNUMBER", "DCB0129", "DSPT", "WCAG22-AA"}},
	{"Electronic patient record", []string{"FHIR-R4-UKCORE", "SNOMED-CT-UK", "DMD", "GPCONNECT", "DCB0129", "DCB0160", "NHSNUMBER"}},
	{"Shared care record", []string{"FHIR-R4", "GPCONNECT", "IHE-XDSB", "NHSNUMBER", "DSPT", "NHSLOGIN"}},
	{"Pathology LIMS", []string{"SNOMED-CT-UK", "FHIR-R4-UKCORE", "NHSNUMBER", "DCB0129", "ISO27001"}},
	{"Radiology information system", []string{"DICOM", "SNOMED-CT-UK", "NHSNUMBER", "DCB0129", "CE-PLUS"}},
	{"Virtual ward platform", []string{"FHIR-R4-UKCORE", "NHSLOGIN", "WCAG22-AA", "DTAC", "DCB0129", "CE-PLUS"}},
	{"Maternity information system", []string{"FHIR-R4-UKCORE", "SNOMED-CT-UK", "NHSNUMBER", "DCB0129", "DCB0160", "DSPT"}},
	{"Pharmacy stock control", []string{"DMD", "ISO27001", "CE-PLUS", "DSPT", "FHIR-R4"}},
	{"Appointment booking", []string{"NHSLOGIN", "WCAG22-AA", "GPCONNECT", "DTAC", "FHIR-R4-UKCORE"}},
	{"Mental health record", []string{"SNOMED-CT-UK", "FHIR-R4-UKCORE", "NHSNUMBER", "DCB0129", "DSPT", "WCAG22-AA"}},
	{"Theatre scheduling", []string{"SNOMED-CT-UK", "NHSNUMBER", "ISO27001", "DCB0129", "CE-PLUS"}},
	{"Digital dictation", []string{"FHIR-R4", "NHSNUMBER", "ISO27001", "DTAC", "WCAG22-AA"}},
}

// evidencePrefix is how an evidence reference for a standard starts.
var evidencePrefix = map[string]string{
	"FHIR-R4":        "FHIR-VAL",
	"FHIR-R4-UKCORE": "UKCORE-ASSURE",
	"SNOMED-CT-UK":   "SCCI0034-CONF",
	"DMD":            "DMD-CURRENCY",
	"DICOM":          "DICOM-CS",
	"IHE-XDSB":       "IHE-CAT",
	"WCAG22-AA":      "ACCESS-AUDIT",
	"ISO27001":       "ISO27001-CERT",
	"DCB0129":        "CSO-SAFETYCASE",
	"DCB0160":        "DEPLOY-SAFETYCASE",
	"DSPT":           "DSPT-SUBMISSION",
	"DTAC":           "DTAC-ASSESS",
	"CE-PLUS":        "CEPLUS-TEST",
	"NHSNUMBER":      "ISB0149-CONF",
	"NHSLOGIN":       "NHSLOGIN-ONBOARD",
	"GPCONNECT":      "GPC-CAL",
}

// assessors recorded on assessments (free text, as a commercial team writes it).
var assessors = []string{
	"Alex Example (technical assurance)",
	"Sam Sample (clinical safety)",
	"Jo Placeholder (information governance)",
	"Pat Demo (interoperability)",
	"Chris Fictional (accessibility)",
	"Robin Mock (cyber security)",
}

// commercialUsers are the commercial team's principals (token names).
var commercialUsers = []string{"demo.alex.example", "demo.jo.placeholder", "demo.sam.sample"}

var withdrawReasons = []string{
	"Product retired from the market; customers are migrating to the successor platform.",
	"Module decommissioned following a contract variation agreed with the buyer.",
	"Capability now delivered through the national integration route instead of this product.",
	"Product line sold to another (fictional) supplier, which will make its own commitments.",
	"Standard superseded for this product by a newer commitment on the successor version.",
}

var lateWithdrawReasons = []string{
	"We can no longer support this standard on the current product; withdrawing while we re-plan.",
	"Development of this capability has been stopped after a change of product strategy.",
}

var disputeGrounds = []string{
	"The assessment used the superseded release; the current release passes the same checks (evidence attached).",
	"Our evidence pack was submitted before the assessment but was not considered.",
	"The failing criterion is out of scope for this product under the contract schedule.",
	"The non-conformance was caused by the buyer's local configuration, not by the product.",
	"The test environment used for the assessment was not representative of production.",
}

var upheldReasons = []string{
	"Evidence confirms the assessed build had been superseded; the assessment is void.",
	"The criterion is outside the contracted scope for this product; the assessment is void.",
	"The submitted evidence pack was missed by the assessor; on review it demonstrates conformance.",
}

var rejectedReasons = []string{
	"A re-test on the current release reproduces the failure; the finding stands.",
	"Scope confirmed against the contract schedule; the finding stands.",
	"The configuration cited is the supplier's recommended default; the finding stands.",
}

var planSummaries = []string{
	"Root cause analysis complete; fix scheduled in the next quarterly release; re-test booked with the assurance team.",
	"Remediation sprint agreed; interim workaround documented for customers; evidence to be resubmitted by the due date.",
	"Gap analysis against the standard shared; three work packages agreed with monthly progress reports.",
	"Third-party assessor engaged; corrective actions tracked in the joint risk log; re-assessment by the due date.",
	"Supplier to deliver a conformant release to the test environment and submit validation evidence.",
}

var reviewClosures = []string{
	"Review completed: remediation plans are in place and progressing; no change to the contract, continue monitoring.",
	"Supplier presented a credible recovery plan to the programme board; closed with enhanced monthly reporting.",
	"Breaches traced to a single release-process failure that has since been fixed; review closed.",
	"Commercial and clinical leads satisfied with the corrective actions; review closed, re-check in six months.",
}
