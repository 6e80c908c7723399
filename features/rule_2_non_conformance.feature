@rules
Feature: R2 Non-conformance
  An assessment assessed after the target date raises a breach:
  non_conformant is major, partially_conformant is minor. Before the target
  date the commitment shows "at risk", with no breach. A commitment has at
  most one open breach at a time.

  Background:
    Given today is 2027-03-01
    And supplier "acme-health" is registered as "Acme Health Systems Ltd"
    And supplier "acme-health" commits to "DICOM" version "2024d" for product "PACS Viewer" by 2027-03-31

  Scenario: Before the target date a non-conformant assessment means at risk, not breach
    When the commercial team assesses that commitment as "non_conformant"
    Then no breach is raised
    And the commitment's status is "at_risk"

  Scenario: Non-conformant after the target date is a major breach
    Given the commercial team assesses that commitment as "conformant"
    And today is 2027-05-10
    When the commercial team assesses that commitment as "non_conformant"
    Then a major breach is raised under rule "R2-non-conformance" version "1"
    And the breach was raised on 2027-05-10
    And the breach cites the event that made the commitment and the latest assessment

  Scenario: Partially conformant after the target date is a minor breach
    Given the commercial team assesses that commitment as "conformant"
    And today is 2027-05-10
    When the commercial team assesses that commitment as "partially_conformant"
    Then a minor breach is raised under rule "R2-non-conformance" version "1"

  Scenario: An assessment on the target date is not after it
    Given today is 2027-03-31
    When the commercial team assesses that commitment as "non_conformant"
    Then no breach is raised
    And the commitment's status is "at_risk"

  Scenario: A second failing assessment while a breach is open raises no second breach
    Given the commercial team assesses that commitment as "conformant"
    And today is 2027-05-10
    And the commercial team assesses that commitment as "non_conformant"
    When today is 2027-05-12
    And the commercial team assesses that commitment as "partially_conformant"
    Then the scorecard of "acme-health" lists 1 breach
