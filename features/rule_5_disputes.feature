@rules
Feature: R5 Disputes (right of reply)
  A supplier may dispute an assessment up to and including the 10th working
  day after it was recorded. While the dispute is open, breaches the
  assessment caused do not escalate. Upheld: the assessment is void and its
  breaches are withdrawn. Rejected: the escalation clocks resume, extended by
  the working days the dispute was open.

  Background:
    Given today is 2027-03-01
    And supplier "acme-health" is registered as "Acme Health Systems Ltd"
    And supplier "bright-records" is registered as "Bright Records plc"
    And supplier "acme-health" commits to "DCB0129" version "4.2" for product "ePrescribing" by 2027-03-31
    And the commercial team assesses that commitment as "conformant"
    And today is 2027-04-26
    And the commercial team assesses that commitment as "non_conformant"
    And a major breach is raised under rule "R2-non-conformance" version "1"

  Scenario: A dispute on the last day of the window is accepted
    Given today is 2027-05-11
    When supplier "acme-health" disputes the latest assessment on the grounds "the hazard log was supplied on 20 April"
    Then the answer is 201
    And the latest assessment is under dispute

  Scenario: A dispute the day after the window closes is refused
    Given today is 2027-05-12
    When supplier "acme-health" disputes the latest assessment on the grounds "late reply"
    Then the answer is 409
    And the answer says "dispute window"
    And the latest assessment is not under dispute

  Scenario: A supplier cannot dispute another supplier's assessment
    Given today is 2027-04-27
    When supplier "bright-records" disputes the latest assessment on the grounds "not ours to dispute"
    Then the answer is 404
    And the latest assessment is not under dispute

  Scenario: An open dispute holds the escalation
    Given today is 2027-04-28
    And supplier "acme-health" disputes the latest assessment on the grounds "evidence overlooked"
    When today is 2027-06-15
    Then the breach is at escalation level 0
    And the breach's escalation is paused

  Scenario: An upheld dispute voids the assessment and withdraws its breach
    Given today is 2027-04-28
    And supplier "acme-health" disputes the latest assessment on the grounds "evidence overlooked"
    When the commercial team upholds the dispute because "the hazard log was on file"
    Then the breach is "withdrawn"
    And the breach was closed under rule "R5-disputes" version "1" citing the dispute
    And the commitment's status is "met"

  Scenario: A rejected dispute resumes the clock, counting the days lost
    Given today is 2027-04-28
    And supplier "acme-health" disputes the latest assessment on the grounds "evidence overlooked"
    And today is 2027-05-05
    And the commercial team rejects the dispute because "the hazard log was incomplete"
    When today is 2027-06-01
    Then the breach is at escalation level 0
    And the breach's next deadline is 2027-06-01
    When today is 2027-06-02
    Then the breach is at escalation level 1

  Scenario: Only a commercial user resolves a dispute
    Given today is 2027-04-28
    And supplier "acme-health" disputes the latest assessment on the grounds "evidence overlooked"
    When supplier "acme-health" tries to uphold the dispute
    Then the answer is 403
    And the latest assessment is under dispute
