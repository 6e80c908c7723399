@rules
Feature: R8 KPI rating
  Each scorecard carries a rating on the UK public procurement KPI scale,
  computed by a published formula (rule R8 version 1) as of the day it is
  read. Past-target commitments are those whose target date has passed and
  that were not withdrawn on or before it; the conformant share is
  (conformant + half of partially conformant) / assessed among them (not
  assessed is never a failure).

    Inadequate: any open breach at level 2, or 3 or more open major breaches,
                or a conformant share below 50%.
    Requires improvement: otherwise any open major breach, any open breach at
                level 1, or a conformant share below 80%.
    Approaching target: otherwise any open minor breach, or a conformant share
                below 100%.
    Good: otherwise.
    Cap: an open breach of a clinical-safety standard (DCB0129, DCB0160)
         limits the rating to Requires improvement at best.
    Other: a supplier with no commitments has nothing to rate.
  A breach whose assessment is under dispute is shown as under dispute and
  not counted.

  Background:
    Given today is 2027-03-01
    And supplier "acme-health" is registered as "Acme Health Systems Ltd"

  Scenario: A supplier with no commitments is rated Other
    Then the rating of "acme-health" is "Other"

  Scenario: Commitments met on time are rated Good
    Given supplier "acme-health" commits to "FHIR-R4" version "4.0.1" for product "Integration Engine" by 2027-03-31
    And the commercial team assesses that commitment as "conformant"
    When today is 2027-04-01
    Then the rating of "acme-health" is "Good"
    And the rating cites rule "R8-kpi-rating" version "1" with 1 conformant of 1 assessed past-target commitment

  Scenario: An open minor breach gives Approaching target
    Given supplier "acme-health" commits to "DICOM" version "2024d" for product "PACS Viewer" by 2027-03-31
    And the commercial team assesses that commitment as "conformant"
    And supplier "acme-health" commits to "WCAG22-AA" version "2.2" for product "Patient portal" by 2027-03-31
    And the commercial team assesses that commitment as "conformant"
    And supplier "acme-health" commits to "FHIR-R4" version "4.0.1" for product "Integration Engine" by 2027-03-31
    And the commercial team assesses that commitment as "conformant"
    And today is 2027-04-12
    When the commercial team assesses that commitment as "partially_conformant"
    Then a minor breach is raised under rule "R2-non-conformance" version "1"
    And the rating of "acme-health" is "Approaching target"

  Scenario: A single partially conformant commitment halves the share
    Given supplier "acme-health" commits to "FHIR-R4" version "4.0.1" for product "Integration Engine" by 2027-03-31
    And the commercial team assesses that commitment as "conformant"
    And today is 2027-04-12
    When the commercial team assesses that commitment as "partially_conformant"
    Then the rating of "acme-health" is "Requires improvement"
    And the rating reasons mention "conformant share 50% is below 80%"

  Scenario: An open major breach gives Requires improvement
    Given supplier "acme-health" commits to "FHIR-R4" version "4.0.1" for product "Integration Engine" by 2027-03-31
    When today is 2027-04-01
    Then the rating of "acme-health" is "Requires improvement"

  Scenario: A breach at level 2 gives Inadequate
    Given supplier "acme-health" commits to "FHIR-R4" version "4.0.1" for product "Integration Engine" by 2027-03-31
    And today is 2027-04-01
    And the commercial team agrees a remediation plan for the breach due 2027-04-30
    When today is 2027-05-01
    Then the breach is at escalation level 2
    And the rating of "acme-health" is "Inadequate"

  Scenario: An open clinical-safety breach caps the rating
    Given supplier "acme-health" commits to "DICOM" version "2024d" for product "PACS Viewer" by 2027-03-31
    And the commercial team assesses that commitment as "conformant"
    And supplier "acme-health" commits to "WCAG22-AA" version "2.2" for product "Patient portal" by 2027-03-31
    And the commercial team assesses that commitment as "conformant"
    And supplier "acme-health" commits to "DCB0129" version "4.2" for product "ePrescribing" by 2027-03-31
    And the commercial team assesses that commitment as "conformant"
    And today is 2027-04-12
    When the commercial team assesses that commitment as "partially_conformant"
    Then a minor breach is raised under rule "R2-non-conformance" version "1"
    And the rating of "acme-health" is "Requires improvement"
    And the rating reasons mention "clinical-safety"

  Scenario: A breach under dispute is shown, not counted
    Given supplier "acme-health" commits to "FHIR-R4" version "4.0.1" for product "Integration Engine" by 2027-03-31
    And the commercial team assesses that commitment as "conformant"
    And today is 2027-04-12
    And the commercial team assesses that commitment as "non_conformant"
    When supplier "acme-health" disputes the latest assessment on the grounds "wrong product version tested"
    Then the rating of "acme-health" is "Good"
    And the rating reasons mention "under dispute"
