# A six-rule slice of the external infusion pump policy, written by hand to mirror
# slice.policy, for `python -m benchmarks.peers`.
#
# input: one claim, as the claims contract spells it, with its diagnoses already without
# their dots (E83.11 as E8311) and each line's date of service as a YYYYMMDD number:
#   {"line_of_business": ..., "diagnoses": [...], "facts": {...},
#    "lines": [{"seq": 1, "hcpcs": "J1325", "service_day": 20260201}, ...]}
# data.slice.decisions: for each line in order, {"seq", "outcome", "rule"} and, for a
# denial, "category"; for a referral, "refer_to".
package slice

import rego.v1

diagnosed(categories) if {
	some code in input.diagnoses
	some category in categories
	startswith(code, category)
}

fact(name) := input.facts[name]

# Medicare members are referred before anything else (rule medicare.lcd).
referred if input.line_of_business == "medicare"

# The rule that denies a line, if one holds: misc.heparin, misc.infusion_controller.
denied_by(line) := "misc.heparin" if {
	line.hcpcs == "J1644"
	diagnosed({"I26", "I80", "I81", "I82"})
}

denied_by(line) := "misc.infusion_controller" if line.hcpcs == "E1399"

# The rule that covers a line, if one holds.
covered_by(line) := "commonly_used.deferoxamine" if {
	line.hcpcs == "J0895"
	diagnosed({"E8311"})
}

covered_by(line) := "E.prostacyclin" if {
	line.hcpcs in {"J1325", "J3285"}
	diagnosed({"I270", "I272"})
	fact("mpap_rest_mmhg") > 25
	fact("ccb_tried_or_ruled_out") == true
}

covered_by(line) := "J.parkinsons_infusion" if {
	line.hcpcs == "J7356"
	line.service_day >= 20260125
	diagnosed({"G20"})
	fact("pd_motor_symptoms_uncontrolled_without_infusion") == true
}

# The policy's precedence: refer, deny, cover, otherwise deny (misc.criteria_not_met).
decide(line) := {"seq": line.seq, "outcome": "refer", "rule": "medicare.lcd", "refer_to": "LCD L33794"} if {
	referred
} else := {"seq": line.seq, "outcome": "denied", "rule": rule, "category": "not_reasonable_and_necessary"} if {
	rule := denied_by(line)
} else := {"seq": line.seq, "outcome": "covered", "rule": rule} if {
	rule := covered_by(line)
} else := {
	"seq": line.seq, "outcome": "denied", "rule": "misc.criteria_not_met",
	"category": "not_reasonable_and_necessary",
}

decisions := [decide(line) | some line in input.lines]
