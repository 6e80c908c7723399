@rules
Feature: R6 Withdrawal
  A supplier may withdraw a commitment on or before its target date at no
  cost. A withdrawal after the target date raises a major breach.

  Background:
    Given today is 2027-03-01
    And supplier "acme-health" is registered as "Acme Health Systems Ltd"
    And supplier "acme-health" commits to "GPCONNECT" version "1.6.2" for product "Appointments" by 2027-03-31
    And the commercial team assesses that commitment as "conformant"

  Scenario: Withdrawing before the target date costs nothing
    Given today is 2027-03-15
    When supplier "acme-health" withdraws that commitment because "moving to a new product line"
    Then no breach is raised
    And the commitment's status is "withdrawn"

  Scenario: Withdrawing on the target date costs nothing
    Given today is 2027-03-31
    When supplier "acme-health" withdraws that commitment because "moving to a new product line"
    Then no breach is raised

  Scenario: Withdrawing after the target date is a major breach
    Given today is 2027-04-01
    When supplier "acme-health" withdraws that commitment because "no longer supported"
    Then a major breach is raised under rule "R6-withdrawal" version "1"
    And the breach was raised on 2027-04-01
    And the breach cites the event that made the commitment and the withdrawal

  Scenario: Only the supplier itself may withdraw its commitment
    When supplier "bright-records" tries to withdraw the commitment of "acme-health"
    Then the answer is 403
    And the commitment's status is "met"
