Feature: Commitments and assessments show on the supplier's scorecard
  A supplier commits to a standard for a product by a date. A commercial team
  records an assessment of that commitment. Both travel as signed events
  through NATS JetStream into the ledger, and the supplier's scorecard shows
  them. A supplier sees its own scorecard and nobody else's.

  Background:
    Given today is 2027-01-04
    And supplier "acme-health" is registered as "Acme Health Systems Ltd"

  Scenario: An assessment of a commitment shows on the scorecard
    Given supplier "acme-health" commits to "FHIR-R4-UKCORE" version "2.0.1" for product "ePrescribing" by 2027-03-31
    When the commercial team assesses that commitment as "partially_conformant" with evidence "ASSURE-2027-0142" by assessor "J. Patel"
    Then the scorecard of "acme-health" shows the commitment to "FHIR-R4-UKCORE" version "2.0.1" with status "at_risk"
    And its latest assessment is "partially_conformant" with evidence "ASSURE-2027-0142"

  Scenario: A conformant assessment shows the commitment as met
    Given supplier "acme-health" commits to "DICOM" version "2024d" for product "PACS Viewer" by 2027-06-30
    When the commercial team assesses that commitment as "conformant" with evidence "DICOM-CS-7" by assessor "R. Okafor"
    Then the scorecard of "acme-health" shows the commitment to "DICOM" version "2024d" with status "met"

  Scenario: A supplier cannot read another supplier's scorecard
    Given supplier "bright-records" is registered as "Bright Records plc"
    When supplier "bright-records" asks for the scorecard of "acme-health"
    Then the answer is 403
    And the answer does not mention "Acme"

  Scenario: A supplier cannot record an assessment of its own commitment
    Given supplier "acme-health" commits to "WCAG22-AA" version "2.2" for product "Patient portal" by 2027-09-30
    When supplier "acme-health" tries to assess that commitment as "conformant"
    Then the answer is 403
    And the scorecard of "acme-health" shows the commitment to "WCAG22-AA" version "2.2" with status "on_track"

  Scenario: An event signed by an unknown key is quarantined and changes nothing
    When an event signed by a key the registry does not know says "acme-health" committed to "DICOM"
    Then that event is in quarantine with reason "unknown_key"
    And the scorecard of "acme-health" lists 0 commitments
