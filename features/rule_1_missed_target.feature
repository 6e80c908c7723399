@rules
Feature: R1 Missed target
  A commitment whose target date passes without a conformant assessment
  raises a major breach, dated the day after the target date. A commitment
  withdrawn on or before its target date is exempt.

  Background:
    Given today is 2027-03-01
    And supplier "acme-health" is registered as "Acme Health Systems Ltd"
    And supplier "acme-health" commits to "FHIR-R4-UKCORE" version "2.0.1" for product "ePrescribing" by 2027-03-31

  Scenario: The target date passes without a conformant assessment
    When today is 2027-04-01
    Then a major breach is raised under rule "R1-missed-target" version "1"
    And the breach was raised on 2027-04-01
    And the breach cites the event that made the commitment
    And the commitment's status is "breached"

  Scenario: On the target date itself nothing is raised
    When today is 2027-03-31
    Then no breach is raised
    And the commitment's status is "on_track"

  Scenario: A non-conformant assessment before the target date is cited when the target is missed
    Given the commercial team assesses that commitment as "non_conformant"
    When today is 2027-04-01
    Then a major breach is raised under rule "R1-missed-target" version "1"
    And the breach cites the event that made the commitment and the latest assessment

  Scenario: A conformant assessment before the target date meets the commitment
    Given the commercial team assesses that commitment as "conformant"
    When today is 2027-06-01
    Then no breach is raised
    And the commitment's status is "met"

  Scenario: A commitment withdrawn before its target date is not breached
    Given today is 2027-03-15
    And supplier "acme-health" withdraws that commitment because "product retired from the catalogue"
    When today is 2027-04-01
    Then no breach is raised
    And the commitment's status is "withdrawn"

  Scenario: Evaluating the rules twice for the same moment emits nothing new
    Given today is 2027-04-01
    When the enforcement rules are evaluated again
    Then nothing new is emitted
    And the ledger holds 1 "BREACH_RAISED" event

  Scenario: A restart rebuilds the enforcement state from the ledger and emits no duplicates
    Given today is 2027-04-01
    When the system restarts
    And the enforcement rules are evaluated again
    Then nothing new is emitted
    And the ledger holds 1 "BREACH_RAISED" event
