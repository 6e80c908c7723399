@rules
Feature: R3 Remediation and escalation
  A breach with no remediation plan agreed by the 20th working day after it
  was raised escalates to level 1 (notice to improve) on the next working
  day. Once a plan is agreed, its due date passing while the breach is still
  open escalates to level 2 (contract performance notice, published) on the
  day after the due date. Working days exclude weekends and bank holidays in
  England.

  Background:
    Given today is 2027-03-01
    And supplier "acme-health" is registered as "Acme Health Systems Ltd"
    And supplier "acme-health" commits to "NHSNUMBER" version "Amd 37/2021" for product "Patient Administration" by 2027-03-31
    And today is 2027-04-01
    And a major breach is raised under rule "R1-missed-target" version "1"

  Scenario: On the 20th working day without a plan nothing escalates yet
    When today is 2027-04-29
    Then the breach is at escalation level 0
    And the breach's next deadline is 2027-04-29

  Scenario: The next working day without a plan escalates to level 1
    When today is 2027-04-30
    Then the breach is at escalation level 1
    And the escalation to level 1 was issued on 2027-04-30 under rule "R3-remediation" version "1"

  Scenario: A plan agreed on the last day stops the escalation
    Given today is 2027-04-29
    And the commercial team agrees a remediation plan for the breach due 2027-06-30
    When today is 2027-05-20
    Then the breach is at escalation level 0
    And the breach's next deadline is 2027-06-30

  Scenario: The plan's due date passing while the breach is open escalates to level 2
    Given today is 2027-04-20
    And the commercial team agrees a remediation plan for the breach due 2027-06-30
    When today is 2027-06-30
    Then the breach is at escalation level 0
    When today is 2027-07-01
    Then the breach is at escalation level 2
    And the escalation to level 2 was issued on 2027-07-01 under rule "R3-remediation" version "1"

  Scenario: A late plan does not undo level 1, and its due date still leads to level 2
    Given today is 2027-05-03
    And the breach is at escalation level 1
    And the commercial team agrees a remediation plan for the breach due 2027-05-31
    When today is 2027-06-01
    Then the breach is at escalation level 2

  Scenario: A supplier cannot agree its own remediation plan
    When supplier "acme-health" tries to agree a remediation plan for the breach due 2027-12-31
    Then the answer is 403
    And the breach has no remediation plan

  Scenario: A bank holiday in the window moves the deadline
    Given supplier "acme-health" commits to "SNOMED-CT-UK" version "40.2.0" for product "Clinical Record" by 2027-04-14
    And today is 2027-04-15
    When today is 2027-05-14
    Then the breach of the "SNOMED-CT-UK" commitment is at escalation level 0
    When today is 2027-05-17
    Then the breach of the "SNOMED-CT-UK" commitment is at escalation level 1
