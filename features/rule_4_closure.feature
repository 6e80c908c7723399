@rules
Feature: R4 Closure
  A conformant assessment of a commitment, recorded after a breach was
  raised, closes the breach as remediated and stops its escalation clock.

  Background:
    Given today is 2027-03-01
    And supplier "acme-health" is registered as "Acme Health Systems Ltd"
    And supplier "acme-health" commits to "WCAG22-AA" version "2.2" for product "Patient portal" by 2027-03-31
    And today is 2027-04-01
    And a major breach is raised under rule "R1-missed-target" version "1"

  Scenario: A conformant assessment closes the open breach
    When today is 2027-04-20
    And the commercial team assesses that commitment as "conformant"
    Then the breach is "remediated"
    And the breach was closed under rule "R4-closure" version "1" citing the latest assessment
    And the commitment's status is "met"

  Scenario: Closure stops the escalation clock
    Given today is 2027-04-20
    And the commercial team assesses that commitment as "conformant"
    When today is 2027-06-01
    Then the breach is at escalation level 0
    And the breach is "remediated"

  Scenario: A partially conformant assessment does not close the breach
    When today is 2027-04-20
    And the commercial team assesses that commitment as "partially_conformant"
    Then the breach is "open"
    And the commitment's status is "breached"
