@rules
Feature: R7 Repeat breaches and disinvestment review
  Three or more breaches raised against a supplier within any rolling 12
  months open a disinvestment review, unless one is already open. The review
  stays on the scorecard until a commercial user closes it with a reason.

  Background:
    Given today is 2027-01-04
    And supplier "acme-health" is registered as "Acme Health Systems Ltd"

  Scenario: Three breaches within 12 months open a review
    Given supplier "acme-health" commits to "DSPT" version "2026-27" for product "Hosting" by 2027-01-31
    And supplier "acme-health" commits to "CE-PLUS" version "2027" for product "Hosting" by 2027-06-30
    And supplier "acme-health" commits to "ISO27001" version "2022" for product "Hosting" by 2028-01-30
    When today is 2028-01-31
    Then the scorecard of "acme-health" lists 3 breaches
    And a disinvestment review is open for "acme-health" citing 3 breaches under rule "R7-repeat-breaches" version "1"

  Scenario: Three breaches spread over more than 12 months open no review
    Given supplier "acme-health" commits to "DSPT" version "2026-27" for product "Hosting" by 2027-01-31
    And supplier "acme-health" commits to "CE-PLUS" version "2027" for product "Hosting" by 2027-06-30
    And supplier "acme-health" commits to "ISO27001" version "2022" for product "Hosting" by 2028-01-31
    When today is 2028-02-01
    Then the scorecard of "acme-health" lists 3 breaches
    And no disinvestment review is open for "acme-health"

  Scenario: A commercial user closes the review with a reason
    Given supplier "acme-health" commits to "DSPT" version "2026-27" for product "Hosting" by 2027-01-31
    And supplier "acme-health" commits to "CE-PLUS" version "2027" for product "Hosting" by 2027-02-28
    And supplier "acme-health" commits to "ISO27001" version "2022" for product "Hosting" by 2027-03-31
    And today is 2027-04-01
    And a disinvestment review is open for "acme-health" citing 3 breaches under rule "R7-repeat-breaches" version "1"
    When the commercial team closes the review because "remediation plans agreed for all three"
    Then no disinvestment review is open for "acme-health"
    And the closed review shows the reason "remediation plans agreed for all three"

  Scenario: A supplier cannot close its own review
    Given supplier "acme-health" commits to "DSPT" version "2026-27" for product "Hosting" by 2027-01-31
    And supplier "acme-health" commits to "CE-PLUS" version "2027" for product "Hosting" by 2027-02-28
    And supplier "acme-health" commits to "ISO27001" version "2022" for product "Hosting" by 2027-03-31
    And today is 2027-04-01
    When supplier "acme-health" tries to close the review
    Then the answer is 403
    And a disinvestment review is open for "acme-health" citing 3 breaches under rule "R7-repeat-breaches" version "1"
