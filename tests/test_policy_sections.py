"""Section-by-section decisions of the External Infusion Pump policy (revision 22).

Each test builds claims per docs/claims-contract.md and checks, line by line, the outcome,
the denial category, the refer target, the missing facts and the rule that decided.
Expected decisions come from the policy text and the contract's adopted readings (section 6),
not from the engine.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from medpol.api import load_policy
from tests.claimbuilder import BUILT, DOS, DROP, SET1, SET2, claim, hist, line, merge

POLICY_PATH = Path(__file__).parent.parent / "policies" / "external-infusion-pump.policy"

INSULIN_POLICY = "Insulin Infusion Pump and Supplies"
LCD = "LCD L33794"
NRN_CAT = "not_reasonable_and_necessary"

# Every decision a test produced, for the reasons check at the end of the module.
DECIDED: list[dict[str, Any]] = []


@pytest.fixture(scope="module")
def policy():
    return load_policy(str(POLICY_PATH))


def decide(policy, c: dict[str, Any], as_of: datetime.date | None = None) -> dict[str, Any]:
    decision = policy.decide(c, as_of=as_of)
    DECIDED.append(decision)
    return decision


# ---------------------------------------------------------------- expectations


@dataclass(frozen=True)
class Exp:
    """What one decided line must say."""

    outcome: str
    category: str | None = None
    rules: tuple[str, ...] = ()  # rule ids that must appear among the line's reasons
    missing: tuple[str, ...] | None = None  # exact `missing` (order free)
    missing_has: tuple[str, ...] = ()  # names that must be in `missing`
    refer_to: str | None = None


def COV(*rules: str) -> Exp:
    return Exp("covered", rules=rules)


def NRN(*rules: str) -> Exp:
    return Exp("denied", NRN_CAT, rules)


def INC(*rules: str) -> Exp:
    return Exp("denied", "incorrect_coding", rules)


def NC(*rules: str) -> Exp:
    return Exp("denied", "not_covered", rules)


def PEND(*missing: str) -> Exp:
    return Exp("pending", missing=missing)


def PEND_HAS(*names: str) -> Exp:
    return Exp("pending", missing_has=names)


def REFER(to: str, *rules: str) -> Exp:
    return Exp("refer", rules=rules, refer_to=to)


NA = Exp("not_applicable")
SKIP = None  # a line whose decision the test does not pin down


def check_line(got: dict[str, Any], exp: Exp) -> None:
    where = f"line {got.get('seq')} {got.get('hcpcs')}: {got}"
    assert got["outcome"] == exp.outcome, where
    assert got.get("category") == exp.category, where
    assert got.get("refer_to") == exp.refer_to, where
    rule_ids = [r["rule"] for r in got.get("reasons", ())]
    for rule in exp.rules:
        assert rule in rule_ids, f"{rule} not among reasons {rule_ids}; {where}"
    if exp.outcome == "pending":
        assert got.get("missing"), where
        if exp.missing is not None:
            assert sorted(got["missing"]) == sorted(exp.missing), where
        for name in exp.missing_has:
            assert name in got["missing"], where
    else:
        assert not got.get("missing"), where


def check_decision(decision: dict[str, Any], c: dict[str, Any], expected: list[Exp | None]) -> None:
    assert decision.get("outcome") != "error", decision
    assert decision["claim"] == c["id"]
    assert decision["policy"] == "external-infusion-pump"
    assert decision["revision"] == "22"
    got = decision["lines"]
    assert [g["seq"] for g in got] == [ln["seq"] for ln in c["lines"]], "one entry per line, in line order"
    assert [g["hcpcs"] for g in got] == [ln["hcpcs"] for ln in c["lines"]]
    assert len(expected) == len(got), "test bug: one expectation per line"
    for g, exp in zip(got, expected, strict=True):
        if exp is not None:
            check_line(g, exp)


def case(case_id: str, c: dict[str, Any], *expected: Exp | None, as_of: datetime.date | None = None, marks=()):
    return pytest.param(c, list(expected), as_of, id=case_id, marks=marks)


def run_case(policy, c, expected, as_of) -> None:
    check_decision(decide(policy, c, as_of), c, expected)


def trio(exp: Exp) -> list[Exp]:
    """Pump, drug and supply (A4221) that all get the same decision.

    A covered or denied supply follows the pump, so it also cites misc.follow_pump.
    """
    supply = exp
    if exp.outcome in ("covered", "denied"):
        supply = Exp(exp.outcome, exp.category, (*exp.rules, "misc.follow_pump"))
    return [exp, exp, supply]


def pump_claim(
    drug: str,
    facts: dict[str, Any],
    diagnoses=(),
    pump: str = "E0781",
    date: str = DOS,
    drug_units: float | None = None,
    **kw,
) -> dict[str, Any]:
    """A pump, the drug it administers and a weekly catheter supply (A4221), on one day."""
    return claim(
        line(pump, date),
        line(drug, date, units=drug_units),
        line("A4221", date),
        facts=facts,
        diagnoses=list(diagnoses),
        **kw,
    )


# ---------------------------------------------------------------- commonly used indications

CHRONIC_IRON = ["E83.111"]

COMMONLY_USED = [
    case(
        "deferoxamine-E83.111-covered-without-criteria-set-facts",
        pump_claim("J0895", {}, CHRONIC_IRON, drug_units=8),
        *trio(COV("commonly_used.deferoxamine")),
    ),
    case(
        "deferoxamine-dotless-E83110-covered",
        pump_claim("J0895", {}, ["E83110"]),
        *trio(COV("commonly_used.deferoxamine")),
    ),
    case("deferoxamine-anemia-D50.9-denied", pump_claim("J0895", {}, ["D50.9"]), *trio(NRN("misc.criteria_not_met"))),
    case("deferoxamine-hemochromatosis-unspecified-E83.10-denied", pump_claim("J0895", {}, ["E83.10"]), *trio(NRN())),
    case(
        "fluorouracil-liver-C22.0-unresectable-covered",
        pump_claim("J9190", {"unresectable": True}, ["C22.0"]),
        *trio(COV("commonly_used.liver_colorectal_chemotherapy")),
    ),
    case(
        "floxuridine-colon-C18.7-refused-surgery-covered",
        pump_claim("J9200", {"unresectable": False, "refused_surgery": True}, ["C18.7"]),
        *trio(COV("commonly_used.liver_colorectal_chemotherapy")),
    ),
    case(
        "fluorouracil-rectum-C20-unresectable-covered",
        pump_claim("J9190", {"unresectable": True}, ["C20"]),
        *trio(COV("commonly_used.liver_colorectal_chemotherapy")),
    ),
    case(
        "fluorouracil-rectosigmoid-C19-resectable-not-refused-2h-infusion-denied",
        pump_claim("J9190", merge(SET2, unresectable=False, refused_surgery=False), ["C19"]),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "fluorouracil-lung-C34.90-unresectable-2h-infusion-denied",
        pump_claim("J9190", merge(SET2, unresectable=True), ["C34.90"]),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "fluorouracil-liver-surgery-facts-missing-pending",
        pump_claim("J9190", SET2, ["C22.0"]),
        *trio(PEND("refused_surgery", "unresectable")),
    ),
    case(
        "morphine-J2270-intractable-cancer-pain-covered",
        pump_claim("J2270", {"intractable_cancer_pain": True}, pump="E0779"),
        *trio(COV("commonly_used.morphine")),
    ),
    case(
        "morphine-J2274-intractable-cancer-pain-covered",
        pump_claim("J2274", {"intractable_cancer_pain": True}, pump="E0779"),
        *trio(COV("commonly_used.morphine")),
    ),
    case(
        "morphine-pain-not-intractable-cancer-denied",
        pump_claim("J2270", {"intractable_cancer_pain": False}, pump="E0779"),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "morphine-pain-fact-missing-pending",
        pump_claim("J2270", {}, pump="E0779"),
        *trio(PEND("intractable_cancer_pain")),
    ),
    case(
        "insulin-J1817-with-E0784-refer-insulin-policy",
        claim("E0784", "J1817", diagnoses=["E10.9"]),
        REFER(INSULIN_POLICY, "commonly_used.insulin"),
        REFER(INSULIN_POLICY, "commonly_used.insulin"),
    ),
    case(
        "insulin-pump-E0784-alone-refer-insulin-policy",
        claim("E0784", diagnoses=["E11.65"]),
        REFER(INSULIN_POLICY, "commonly_used.insulin"),
    ),
]


@pytest.mark.parametrize(("c", "expected", "as_of"), COMMONLY_USED)
def test_commonly_used_indications(policy, c, expected, as_of):
    run_case(policy, c, expected, as_of)


# ---------------------------------------------------------------- criteria sets 1 and 2

# Acyclovir (situation C) has no conditions of its own: only the criteria sets decide.
CRITERIA_SETS = [
    case(
        "set1-prolonged-24h-covered",
        pump_claim("J0133", SET1),
        *trio(
            COV(
                "C.antifungal_antiviral",
                "criteria_set_1.home_parenteral",
                "criteria_set_1.pump_for_safety",
                "criteria_set_1.prolonged_infusion",
                "criteria_set_1.regimen_advantage",
            )
        ),
    ),
    case(
        "set1-exactly-8h-covered",
        pump_claim("J0133", merge(SET1, infusion_hours=8)),
        *trio(COV("C.antifungal_antiviral", "criteria_set_1.prolonged_infusion")),
    ),
    case(
        "set2-intermittent-2h-covered",
        pump_claim("J0133", SET2),
        *trio(
            COV(
                "C.antifungal_antiviral",
                "criteria_set_2.home_parenteral",
                "criteria_set_2.pump_for_safety",
                "criteria_set_2.intermittent_infusion",
                "criteria_set_2.controlled_rate",
            )
        ),
    ),
    case(
        "set2-intermittent-7.5h-covered",
        pump_claim("J0133", merge(SET2, infusion_hours=7.5)),
        *trio(COV("C.antifungal_antiviral", "criteria_set_2.intermittent_infusion")),
    ),
    case(
        "set1-efficacy-not-proven-denied",
        pump_claim("J0133", merge(SET1, prolonged_infusion_efficacy_proven=False)),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "set1-regimen-advantage-not-proven-denied",
        pump_claim("J0133", merge(SET1, regimen_advantage_proven=False)),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "set1-facts-with-2h-infusion-and-office-return-denied",
        pump_claim("J0133", merge(SET1, infusion_hours=2, no_office_return_required=False)),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "set1-facts-with-2h-infusion-pending-set2-facts",
        pump_claim("J0133", merge(SET1, infusion_hours=2)),
        *trio(PEND("no_office_return_required", "toxicity_requires_controlled_rate")),
    ),
    case(
        "set2-facts-with-24h-infusion-efficacy-unproven-denied",
        pump_claim("J0133", merge(SET2, infusion_hours=24, prolonged_infusion_efficacy_proven=False)),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "set2-toxicity-avoidable-denied",
        pump_claim("J0133", merge(SET2, toxicity_requires_controlled_rate=False)),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "set2-office-return-required-denied",
        pump_claim("J0133", merge(SET2, no_office_return_required=False)),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "home-parenteral-not-necessary-denied",
        pump_claim("J0133", merge(SET1, home_parenteral_necessary=False)),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "pump-not-needed-for-safety-denied",
        pump_claim("J0133", merge(SET2, pump_necessary_for_safety=False)),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "home-parenteral-fact-missing-pending",
        pump_claim("J0133", merge(SET1, home_parenteral_necessary=DROP)),
        *trio(PEND("home_parenteral_necessary")),
    ),
    case(
        "no-criteria-facts-pending",
        pump_claim("J0133", {}),
        *trio(PEND_HAS("home_parenteral_necessary", "pump_necessary_for_safety", "infusion_hours")),
    ),
]


@pytest.mark.parametrize(("c", "expected", "as_of"), CRITERIA_SETS)
def test_criteria_sets(policy, c, expected, as_of):
    run_case(policy, c, expected, as_of)


# ---------------------------------------------------------------- situations A, B, C, G

PAIN = {"intractable_cancer_pain": True, "oral_transdermal_failed_or_intolerant": True}
ZICONOTIDE = {"severe_chronic_pain": True, "intrathecal_therapy_warranted": True, "refractory_to_other_treatment": True}

SITUATIONS_ABCG = [
    # A. anticancer chemotherapy: continuous infusion of at least 8 hours with a proven regimen
    case("A-cladribine-set1-covered", pump_claim("J9065", SET1), *trio(COV("A.anticancer_chemotherapy"))),
    case("A-cytarabine-set1-covered", pump_claim("J9100", SET1), *trio(COV("A.anticancer_chemotherapy"))),
    case("A-vinblastine-set1-covered", pump_claim("J9360", SET1), *trio(COV("A.anticancer_chemotherapy"))),
    case(
        "A-fluorouracil-lung-cancer-set1-covered",
        pump_claim("J9190", SET1, ["C34.90"]),
        *trio(COV("A.anticancer_chemotherapy")),
    ),
    case("A-cladribine-2h-infusion-denied", pump_claim("J9065", SET2), *trio(NRN("misc.criteria_not_met"))),
    case(
        "A-cladribine-regimen-advantage-unproven-denied",
        pump_claim("J9065", merge(SET1, regimen_advantage_proven=False)),
        *trio(NRN("misc.criteria_not_met")),
    ),
    # B. narcotic analgesics except meperidine
    case("B-hydromorphone-covered", pump_claim("J1170", merge(SET1, PAIN)), *trio(COV("B.narcotic_analgesics"))),
    case("B-fentanyl-covered", pump_claim("J3010", merge(SET1, PAIN)), *trio(COV("B.narcotic_analgesics"))),
    case("B-meperidine-denied", pump_claim("J2175", merge(SET1, PAIN)), *trio(NRN("B.except_meperidine"))),
    case(
        "B-meperidine-without-any-facts-denied-not-pending", pump_claim("J2175", {}), *trio(NRN("B.except_meperidine"))
    ),
    case(
        "B-hydromorphone-oral-regimen-not-failed-denied",
        pump_claim("J1170", merge(SET1, PAIN, oral_transdermal_failed_or_intolerant=False)),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "B-hydromorphone-no-intractable-cancer-pain-denied",
        pump_claim("J1170", merge(SET1, PAIN, intractable_cancer_pain=False)),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "B-hydromorphone-without-criteria-set-denied",
        pump_claim("J1170", merge(SET1, PAIN, pump_necessary_for_safety=False)),
        *trio(NRN("misc.criteria_not_met")),
    ),
    # C. antifungal / antiviral
    case("C-acyclovir-covered", pump_claim("J0133", SET2), *trio(COV("C.antifungal_antiviral"))),
    case("C-foscarnet-covered", pump_claim("J1455", SET2), *trio(COV("C.antifungal_antiviral"))),
    case("C-amphotericin-b-J0285-covered", pump_claim("J0285", SET2), *trio(COV("C.antifungal_antiviral"))),
    case("C-ganciclovir-covered", pump_claim("J1570", SET2), *trio(COV("C.antifungal_antiviral"))),
    case(
        "C-acyclovir-criteria-not-met-denied",
        pump_claim("J0133", merge(SET2, home_parenteral_necessary=False)),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "C-liposomal-amphotericin-J0289-impaired-renal-covered",
        pump_claim("J0289", merge(SET2, impaired_renal_function=True)),
        *trio(COV("C.liposomal_amphotericin_b", "C.liposomal_amphotericin_b.renal")),
    ),
    case(
        "C-liposomal-amphotericin-J0287-toxicity-covered",
        pump_claim("J0287", merge(SET2, amphotericin_b_toxicity=True, impaired_renal_function=False)),
        *trio(COV("C.liposomal_amphotericin_b", "C.liposomal_amphotericin_b.toxicity")),
    ),
    case(
        "C-liposomal-amphotericin-J0289-neither-item-denied",
        pump_claim("J0289", merge(SET2, amphotericin_b_toxicity=False, impaired_renal_function=False)),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "C-liposomal-amphotericin-renal-false-toxicity-unknown-pending",
        pump_claim("J0289", merge(SET2, impaired_renal_function=False)),
        *trio(PEND("amphotericin_b_toxicity")),
    ),
    # G. ziconotide
    case("G-ziconotide-covered", pump_claim("J2278", merge(SET1, ZICONOTIDE)), *trio(COV("G.ziconotide"))),
    case(
        "G-ziconotide-not-refractory-denied",
        pump_claim("J2278", merge(SET1, ZICONOTIDE, refractory_to_other_treatment=False)),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "G-ziconotide-intrathecal-not-warranted-denied",
        pump_claim("J2278", merge(SET1, ZICONOTIDE, intrathecal_therapy_warranted=False)),
        *trio(NRN("misc.criteria_not_met")),
    ),
]


@pytest.mark.parametrize(("c", "expected", "as_of"), SITUATIONS_ABCG)
def test_situations_a_b_c_g(policy, c, expected, as_of):
    run_case(policy, c, expected, as_of)


# ---------------------------------------------------------------- D. parenteral inotropic therapy

HF = ["I50.22"]
D_ITEMS = {
    "accf_aha_stage": "D",
    "nyha_class": 3,
    "symptomatic_despite_gdmt": True,
    "inotrope_goal": "bridge",
    "eligible_for_mcs_or_transplant": True,
    "advanced_hf_cardiologist_evaluation": True,
    "improvement_documented_at_discharge": True,
    "evaluated_every_three_months": True,
    "hf_team_financial_relationship_with_supplier": False,
}


def inotrope(drug: str = "J1250", diagnoses=HF, **changes) -> dict[str, Any]:
    return pump_claim(drug, merge(SET1, D_ITEMS, **changes), diagnoses)


SITUATION_D = [
    case("D-dobutamine-stage-D-bridge-covered", inotrope(), *trio(COV("D.inotropic_therapy"))),
    case("D-milrinone-stage-D-covered", inotrope("J2260"), *trio(COV("D.inotropic_therapy"))),
    case("D-dopamine-stage-D-covered", inotrope("J1265"), *trio(COV("D.inotropic_therapy"))),
    case(
        "D-dobutamine-NYHA-4-stage-C-covered",
        inotrope(accf_aha_stage="C", nyha_class=4),
        *trio(COV("D.inotropic_therapy")),
    ),
    case(
        "D-dobutamine-NYHA-4-stage-unknown-covered",
        inotrope(accf_aha_stage=DROP, nyha_class=4),
        *trio(COV("D.inotropic_therapy")),
    ),
    case(
        "D-dobutamine-stage-C-NYHA-3-denied",
        inotrope(accf_aha_stage="C", nyha_class=3),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "D-dobutamine-palliative-not-eligible-covered",
        inotrope(inotrope_goal="palliative", eligible_for_mcs_or_transplant=False),
        *trio(COV("D.inotropic_therapy", "D.inotropic_therapy.bridge_or_palliative")),
    ),
    case(
        "D-dobutamine-palliative-but-eligible-denied",
        inotrope(inotrope_goal="palliative", eligible_for_mcs_or_transplant=True),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "D-dobutamine-bridge-not-eligible-denied",
        inotrope(inotrope_goal="bridge", eligible_for_mcs_or_transplant=False),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "D-dobutamine-financial-relationship-with-supplier-denied",
        inotrope(hf_team_financial_relationship_with_supplier=True),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "D-dobutamine-not-symptomatic-on-gdmt-denied",
        inotrope(symptomatic_despite_gdmt=False),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "D-dobutamine-no-advanced-hf-cardiologist-denied",
        inotrope(advanced_hf_cardiologist_evaluation=False),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "D-dobutamine-no-improvement-at-discharge-denied",
        inotrope(improvement_documented_at_discharge=False),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "D-dobutamine-not-evaluated-every-three-months-denied",
        inotrope(evaluated_every_three_months=False),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "D-dobutamine-cardiomyopathy-I42.0-without-I50-denied",
        inotrope(diagnoses=["I42.0"]),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "D-dobutamine-not-symptomatic-other-items-unknown-denied",
        inotrope(
            symptomatic_despite_gdmt=False,
            inotrope_goal=DROP,
            eligible_for_mcs_or_transplant=DROP,
            advanced_hf_cardiologist_evaluation=DROP,
            improvement_documented_at_discharge=DROP,
            evaluated_every_three_months=DROP,
            hf_team_financial_relationship_with_supplier=DROP,
        ),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "D-dobutamine-improvement-fact-missing-pending",
        inotrope(improvement_documented_at_discharge=DROP),
        *trio(PEND("improvement_documented_at_discharge")),
    ),
    case(
        "D-dobutamine-without-criteria-set-denied",
        inotrope(home_parenteral_necessary=False),
        *trio(NRN("misc.criteria_not_met")),
    ),
]


@pytest.mark.parametrize(("c", "expected", "as_of"), SITUATION_D)
def test_situation_d_inotropes(policy, c, expected, as_of):
    run_case(policy, c, expected, as_of)


# ---------------------------------------------------------------- E. epoprostenol or treprostinil

PH = ["I27.0"]
E_ITEMS = {
    "ph_secondary_to_venous_or_respiratory": False,
    "ph_type": "primary",
    "ph_progressed_despite_treatment": True,
    "mpap_rest_mmhg": 40,
    "mpap_exertion_mmhg": 50,
    "ph_significant_symptoms": True,
    "ccb_tried_or_ruled_out": True,
}


def prostacyclin(drug: str = "J1325", pump: str = "K0455", diagnoses=PH, **changes) -> dict[str, Any]:
    return pump_claim(drug, merge(SET1, E_ITEMS, **changes), diagnoses, pump=pump)


SITUATION_E = [
    case("E-epoprostenol-K0455-covered", prostacyclin(), *trio(COV("E.prostacyclin"))),
    case(
        "E-treprostinil-K0455-secondary-ph-I27.20-covered",
        prostacyclin("J3285", diagnoses=["I27.20"], ph_type="secondary"),
        *trio(COV("E.prostacyclin")),
    ),
    case(
        "E-epoprostenol-with-E0781-pump-denied-drug-follows",
        prostacyclin(pump="E0781"),
        NRN("E.pump_k0455"),
        NRN(),
        NRN("misc.follow_pump"),
    ),
    case(
        "E-treprostinil-with-E0779-pump-denied-drug-follows",
        prostacyclin("J3285", pump="E0779"),
        NRN("E.pump_k0455"),
        NRN(),
        NRN("misc.follow_pump"),
    ),
    case(
        "E-pump_drug-epoprostenol-on-E0781-denied",
        claim("E0781", "A4221", facts=merge(SET1, E_ITEMS, pump_drug="J1325"), diagnoses=PH),
        NRN("E.pump_k0455"),
        NRN("misc.follow_pump"),
    ),
    case(
        "E-pump_drug-epoprostenol-on-K0455-covered",
        claim("K0455", "A4221", facts=merge(SET1, E_ITEMS, pump_drug="J1325"), diagnoses=PH),
        COV("E.prostacyclin"),
        COV("misc.follow_pump"),
    ),
    case(
        "E-owned-pump-K0455-drug-covered",
        claim("J1325", "A4221", facts=merge(SET1, E_ITEMS, owned_pump="K0455"), diagnoses=PH),
        COV("E.prostacyclin", "misc.follow_pump"),
        COV("misc.follow_pump"),
    ),
    case(
        "E-owned-pump-E0781-not-K0455-drug-and-supply-denied",
        claim("J1325", "A4221", facts=merge(SET1, E_ITEMS, owned_pump="E0781"), diagnoses=PH),
        NRN(),
        NRN(),
    ),
    case(
        "E-K0455-and-E0781-both-billed-K0455-covered-E0781-denied",
        claim("K0455", "E0781", "J1325", "A4221", facts=merge(SET1, E_ITEMS), diagnoses=PH),
        COV("E.prostacyclin"),
        NRN("E.pump_k0455"),
        COV("E.prostacyclin"),
        COV("misc.follow_pump"),
    ),
    case(
        "E-secondary-to-respiratory-disorder-denied",
        prostacyclin(ph_secondary_to_venous_or_respiratory=True),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "E-not-progressed-despite-treatment-denied",
        prostacyclin(ph_progressed_despite_treatment=False),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "E-secondary-not-progressed-denied",
        prostacyclin(ph_type="secondary", ph_progressed_despite_treatment=False),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "E-no-significant-symptoms-denied",
        prostacyclin(ph_significant_symptoms=False),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case("E-ccb-not-tried-denied", prostacyclin(ccb_tried_or_ruled_out=False), *trio(NRN("misc.criteria_not_met"))),
    case(
        "E-no-pulmonary-hypertension-dx-I27.1-denied",
        prostacyclin(diagnoses=["I27.1"]),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "E-mpap-rest-25-exertion-30-denied",
        prostacyclin(mpap_rest_mmhg=25, mpap_exertion_mmhg=30),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "E-mpap-rest-25.5-exertion-20-covered",
        prostacyclin(mpap_rest_mmhg=25.5, mpap_exertion_mmhg=20),
        *trio(COV("E.prostacyclin", "E.prostacyclin.pressure")),
    ),
    case(
        "E-mpap-rest-20-exertion-31-covered",
        prostacyclin(mpap_rest_mmhg=20, mpap_exertion_mmhg=31),
        *trio(COV("E.prostacyclin", "E.prostacyclin.pressure")),
    ),
    case(
        "E-mpap-rest-26-exertion-unknown-covered",
        prostacyclin(mpap_rest_mmhg=26, mpap_exertion_mmhg=DROP),
        *trio(COV("E.prostacyclin")),
    ),
    case(
        "E-mpap-rest-25-exertion-unknown-pending",
        prostacyclin(mpap_rest_mmhg=25, mpap_exertion_mmhg=DROP),
        *trio(PEND("mpap_exertion_mmhg")),
    ),
]


@pytest.mark.parametrize(("c", "expected", "as_of"), SITUATION_E)
def test_situation_e_prostacyclins(policy, c, expected, as_of):
    run_case(policy, c, expected, as_of)


# ---------------------------------------------------------------- F. gallium nitrate

HYPERCALCEMIA = ["E83.52"]
F_FACTS = merge(
    SET1,
    symptomatic_cancer_hypercalcemia=True,
    corrected_serum_calcium_mg_dl=13.5,
    prior_gallium_course_same_episode=False,
)


def gallium(*lines, history=(), diagnoses=HYPERCALCEMIA, **changes) -> dict[str, Any]:
    return claim(*lines, facts=merge(F_FACTS, **changes), diagnoses=list(diagnoses), history=list(history))


def days(*dates: str) -> list[dict[str, Any]]:
    return [hist("J1457", d) for d in dates]


SITUATION_F = [
    case("F-gallium-symptomatic-covered", pump_claim("J1457", F_FACTS, HYPERCALCEMIA), *trio(COV("F.gallium_nitrate"))),
    case(
        "F-gallium-not-symptomatic-denied",
        pump_claim("J1457", merge(F_FACTS, symptomatic_cancer_hypercalcemia=False), HYPERCALCEMIA),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "F-gallium-hypocalcemia-E83.51-denied",
        pump_claim("J1457", F_FACTS, ["E83.51"]),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "F-gallium-second-course-same-episode-denied",
        pump_claim("J1457", merge(F_FACTS, prior_gallium_course_same_episode=True), HYPERCALCEMIA),
        *trio(NRN("F.one_course")),
    ),
    case(
        "F-gallium-prior-course-unknown-pending",
        pump_claim("J1457", merge(F_FACTS, prior_gallium_course_same_episode=DROP), HYPERCALCEMIA),
        *trio(PEND("prior_gallium_course_same_episode")),
    ),
    case(
        "F-gallium-serum-calcium-below-12-does-not-decide-covered",
        pump_claim("J1457", merge(F_FACTS, corrected_serum_calcium_mg_dl=11.2), HYPERCALCEMIA),
        *trio(COV("F.gallium_nitrate")),
    ),
    case(
        "F-owned-pump-sixth-day-denied",
        gallium(
            line("J1457", "2026-02-06"),
            owned_pump="E0781",
            history=days("2026-02-01", "2026-02-02", "2026-02-03", "2026-02-04", "2026-02-05"),
        ),
        NRN("F.five_days"),
    ),
    case(
        "F-fifth-day-covered-sixth-day-denied",
        gallium(
            line("E0781", "2026-02-05"),
            line("J1457", "2026-02-05"),
            line("J1457", "2026-02-06"),
            history=days("2026-02-01", "2026-02-02", "2026-02-03", "2026-02-04"),
        ),
        COV(),
        COV("F.gallium_nitrate"),
        NRN("F.five_days"),
    ),
    case(
        "F-five-days-in-history-sixth-day-denied",
        gallium(
            line("E0781", "2026-02-06"),
            line("J1457", "2026-02-06"),
            history=days("2026-02-01", "2026-02-02", "2026-02-03", "2026-02-04", "2026-02-05"),
        ),
        COV(),
        NRN("F.five_days"),
    ),
    case(
        "F-day-30-days-back-outside-window-covered",
        gallium(
            line("E0781", "2026-03-10"),
            line("J1457", "2026-03-10"),
            history=days("2026-02-08", "2026-03-06", "2026-03-07", "2026-03-08", "2026-03-09"),
        ),
        COV(),
        COV("F.gallium_nitrate"),
    ),
    case(
        "F-day-29-days-back-inside-window-denied",
        gallium(
            line("E0781", "2026-03-10"),
            line("J1457", "2026-03-10"),
            history=days("2026-02-09", "2026-03-06", "2026-03-07", "2026-03-08", "2026-03-09"),
        ),
        COV(),
        NRN("F.five_days"),
    ),
    case(
        "F-same-day-in-history-and-claim-counts-once-covered",
        gallium(
            line("E0781", "2026-02-05"),
            line("J1457", "2026-02-05"),
            history=days("2026-02-01", "2026-02-02", "2026-02-03", "2026-02-04", "2026-02-05"),
        ),
        COV(),
        COV("F.gallium_nitrate"),
    ),
]


@pytest.mark.parametrize(("c", "expected", "as_of"), SITUATION_F)
def test_situation_f_gallium(policy, c, expected, as_of):
    run_case(policy, c, expected, as_of)


# ---------------------------------------------------------------- H. subcutaneous immune globulin

H_ITEMS = merge(SET2, scig_labeled_subcutaneous=True, administered_in_home=True, home_administration_necessary=True)


def scig(diagnoses, drug: str = "J1559", **changes) -> dict[str, Any]:
    return pump_claim(drug, merge(H_ITEMS, **changes), diagnoses, pump="E0779")


SITUATION_H = [
    case(
        "H-scig-J1559-primary-immune-deficiency-D80.0-covered",
        scig(["D80.0"]),
        *trio(COV("H.scig", "H.scig.primary_immune_deficiency")),
    ),
    case(
        "H-scig-J1561-CVID-D83.9-covered",
        scig(["D83.9"], "J1561"),
        *trio(COV("H.scig", "H.scig.primary_immune_deficiency")),
    ),
    case(
        "H-scig-J1575-ataxia-telangiectasia-G11.3-covered",
        scig(["G11.3"], "J1575"),
        *trio(COV("H.scig.primary_immune_deficiency")),
    ),
    case(
        "H-scig-D80.5-inside-range-D80.2-D80.7-covered", scig(["D80.5"]), *trio(COV("H.scig.primary_immune_deficiency"))
    ),
    case(
        "H-scig-cidp-G61.81-responded-to-ivig-covered",
        scig(["G61.81"], cidp_responded_to_ivig=True),
        *trio(COV("H.scig", "H.scig.cidp")),
    ),
    case(
        "H-scig-pid-with-cidp-response-unknown-covered",
        scig(["D80.0"], cidp_responded_to_ivig=DROP),
        *trio(COV("H.scig")),
    ),
    case(
        "H-scig-cidp-not-responded-denied",
        scig(["G61.81"], cidp_responded_to_ivig=False),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case("H-scig-cidp-response-unknown-pending", scig(["G61.81"]), *trio(PEND("cidp_responded_to_ivig"))),
    case(
        "H-scig-neither-pid-nor-cidp-denied",
        scig(["R53.83"], cidp_responded_to_ivig=True),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case("H-scig-D80.1-outside-pid-set-denied", scig(["D80.1"]), *trio(NRN("misc.criteria_not_met"))),
    case("H-scig-D81.4-outside-pid-set-denied", scig(["D81.4"]), *trio(NRN("misc.criteria_not_met"))),
    case(
        "H-scig-not-administered-in-home-denied",
        scig(["D80.0"], administered_in_home=False),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "H-scig-home-not-medically-necessary-denied",
        scig(["D80.0"], home_administration_necessary=False),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "H-scig-not-labelled-subcutaneous-denied",
        scig(["D80.0"], scig_labeled_subcutaneous=False),
        *trio(NRN("misc.criteria_not_met")),
    ),
]


@pytest.mark.parametrize(("c", "expected", "as_of"), SITUATION_H)
def test_situation_h_scig(policy, c, expected, as_of):
    run_case(policy, c, expected, as_of)


# ---------------------------------------------------------------- I. levodopa-carbidopa

PD = ["G20.A1"]
I_ITEMS = merge(
    SET1,
    infusion_hours=16,
    neurologist_prescribes_and_manages=True,
    idiopathic_pd_cardinal_features=True,
    levodopa_responsive_on_periods=True,
    off_hours_per_day=3,
    other_anti_pd_class_tried=True,
    atypical_or_secondary_parkinsonism=False,
    peg_j_contraindicated=False,
)


def duopa(diagnoses=PD, **changes) -> dict[str, Any]:
    return pump_claim("J7340", merge(I_ITEMS, **changes), diagnoses, pump="E0779")


SITUATION_I = [
    case("I-levodopa-carbidopa-G20.A1-covered", duopa(), *trio(COV("I.levodopa_carbidopa"))),
    case("I-levodopa-carbidopa-G20-covered", duopa(["G20"]), *trio(COV("I.levodopa_carbidopa"))),
    case("I-off-hours-2.5-denied", duopa(off_hours_per_day=2.5), *trio(NRN("misc.criteria_not_met"))),
    case(
        "I-no-other-anti-pd-class-denied", duopa(other_anti_pd_class_tried=False), *trio(NRN("misc.criteria_not_met"))
    ),
    case(
        "I-not-managed-by-neurologist-denied",
        duopa(neurologist_prescribes_and_manages=False),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "I-no-idiopathic-cardinal-features-denied",
        duopa(idiopathic_pd_cardinal_features=False),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case("I-progressive-supranuclear-palsy-G23.1-denied", duopa(["G23.1"]), *trio(NRN("misc.criteria_not_met"))),
    case(
        "I-exclusion-atypical-parkinsonism-denied",
        duopa(atypical_or_secondary_parkinsonism=True),
        *trio(NRN("I.exclusions", "I.exclusions.atypical")),
    ),
    case(
        "I-exclusion-non-levodopa-responsive-denied",
        duopa(levodopa_responsive_on_periods=False),
        *trio(NRN("I.exclusions", "I.exclusions.non_responsive")),
    ),
    case(
        "I-exclusion-peg-j-contraindicated-denied",
        duopa(peg_j_contraindicated=True),
        *trio(NRN("I.exclusions", "I.exclusions.peg_j")),
    ),
    case(
        "I-exclusion-facts-missing-pending",
        duopa(atypical_or_secondary_parkinsonism=DROP, peg_j_contraindicated=DROP),
        *trio(PEND("atypical_or_secondary_parkinsonism", "peg_j_contraindicated")),
    ),
]


@pytest.mark.parametrize(("c", "expected", "as_of"), SITUATION_I)
def test_situation_i_levodopa_carbidopa(policy, c, expected, as_of):
    run_case(policy, c, expected, as_of)


# ---------------------------------------------------------------- J. blinatumomab, J7356

B_ALL = ["C91.00"]
RELAPSED = merge(SET1, all_setting="relapsed_refractory", cycle_number=1)
MRD = merge(SET1, all_setting="mrd_remission", remission_number=1, mrd_percent=0.1, cycle_number=4)
CD19 = merge(SET1, all_setting="cd19_ph_negative", cd19_positive=True, ph_negative=True)
J7356_FACTS = merge(SET1, pd_motor_symptoms_uncontrolled_without_infusion=True)


def blin(facts, date: str = DOS, diagnoses=B_ALL, units: float = 140, **kw) -> dict[str, Any]:
    return pump_claim("J9039", facts, diagnoses, date=date, drug_units=units, **kw)


SITUATION_J = [
    case(
        "J-relapsed-cycle-9-covered",
        blin(merge(RELAPSED, cycle_number=9)),
        *trio(COV("J.blinatumomab", "J.blinatumomab.relapsed")),
    ),
    case("J-relapsed-cycle-10-denied", blin(merge(RELAPSED, cycle_number=10)), *trio(NRN("misc.criteria_not_met"))),
    case(
        "J-relapsed-dotless-C9100-covered", blin(RELAPSED, diagnoses=["C9100"]), *trio(COV("J.blinatumomab.relapsed"))
    ),
    case(
        "J-relapsed-infant-under-1-month-covered",
        blin(RELAPSED, birth_date="2026-01-20"),
        *trio(COV("J.blinatumomab.relapsed")),
    ),
    case("J-relapsed-AML-C92.00-denied", blin(RELAPSED, diagnoses=["C92.00"]), *trio(NRN("misc.criteria_not_met"))),
    case(
        "J-mrd-remission-1-mrd-0.1-cycle-4-covered",
        blin(MRD),
        *trio(COV("J.blinatumomab", "J.blinatumomab.mrd_remission")),
    ),
    case(
        "J-mrd-remission-2-mrd-0.5-cycle-1-covered",
        blin(merge(MRD, remission_number=2, mrd_percent=0.5, cycle_number=1)),
        *trio(COV("J.blinatumomab.mrd_remission")),
    ),
    case("J-mrd-remission-3-denied", blin(merge(MRD, remission_number=3)), *trio(NRN("misc.criteria_not_met"))),
    case("J-mrd-0.09-percent-denied", blin(merge(MRD, mrd_percent=0.09)), *trio(NRN("misc.criteria_not_met"))),
    case("J-mrd-cycle-5-denied", blin(merge(MRD, cycle_number=5)), *trio(NRN("misc.criteria_not_met"))),
    case(
        "J-cd19-ph-negative-on-2026-01-25-covered",
        blin(CD19, date="2026-01-25"),
        *trio(COV("J.blinatumomab", "J.blinatumomab.cd19_ph_negative")),
    ),
    case("J-cd19-ph-negative-on-2026-01-24-denied", blin(CD19, date="2026-01-24"), *trio(NRN("misc.criteria_not_met"))),
    case("J-cd19-negative-denied", blin(merge(CD19, cd19_positive=False)), *trio(NRN("misc.criteria_not_met"))),
    case("J-ph-positive-denied", blin(merge(CD19, ph_negative=False)), *trio(NRN("misc.criteria_not_met"))),
    case("J-cd19-member-26-days-old-denied", blin(CD19, birth_date="2026-01-15"), *trio(NRN("misc.criteria_not_met"))),
    case(
        "J-cd19-member-one-day-short-of-1-month-denied",
        blin(CD19, birth_date="2026-01-11"),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "J-cd19-member-exactly-1-month-covered",
        blin(CD19, birth_date="2026-01-10"),
        *trio(COV("J.blinatumomab.cd19_ph_negative")),
    ),
    case("J-relapsed-cycle-unknown-pending", blin(merge(RELAPSED, cycle_number=DROP)), *trio(PEND("cycle_number"))),
    case("J-cd19-positive-unknown-pending", blin(merge(CD19, cd19_positive=DROP)), *trio(PEND("cd19_positive"))),
    case(
        "J-cd19-ph-negative-as-of-2026-01-24-denied",
        blin(CD19),
        *trio(NRN("misc.criteria_not_met")),
        as_of=datetime.date(2026, 1, 24),
    ),
    case(
        "J-cd19-ph-negative-served-01-20-as-of-2026-01-25-covered",
        blin(CD19, date="2026-01-20"),
        *trio(COV("J.blinatumomab.cd19_ph_negative")),
        as_of=datetime.date(2026, 1, 25),
    ),
    # J item 3, second sentence: foscarbidopa/foslevodopa (J7356), reading 5
    case(
        "J-J7356-on-2026-01-25-covered",
        pump_claim("J7356", J7356_FACTS, PD, pump="E0779", date="2026-01-25"),
        *trio(COV("J.parkinsons_infusion")),
    ),
    case(
        "J-J7356-motor-symptoms-controlled-denied",
        pump_claim(
            "J7356", merge(J7356_FACTS, pd_motor_symptoms_uncontrolled_without_infusion=False), PD, pump="E0779"
        ),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "J-J7356-without-parkinsons-dx-denied",
        pump_claim("J7356", J7356_FACTS, ["G25.0"], pump="E0779"),
        *trio(NRN("misc.criteria_not_met")),
    ),
    case(
        "J-J7356-owned-pump-covered",
        claim("J7356", facts=merge(J7356_FACTS, owned_pump="E0779"), diagnoses=PD),
        COV("J.parkinsons_infusion"),
    ),
    case(
        "J-J7356-on-2026-01-24-not-applicable",
        claim(line("J7356", "2026-01-24"), facts=merge(J7356_FACTS, owned_pump="E0779"), diagnoses=PD),
        NA,
    ),
    case(
        "J-J7356-as-of-2026-01-24-not-applicable",
        claim("J7356", facts=merge(J7356_FACTS, owned_pump="E0779"), diagnoses=PD),
        NA,
        as_of=datetime.date(2026, 1, 24),
    ),
    case(
        "J-J7356-with-pump_drug-on-2026-01-24-pump-denied",
        claim(line("E0779", "2026-01-24"), facts=merge(J7356_FACTS, pump_drug="J7356"), diagnoses=PD),
        NRN("misc.criteria_not_met"),
    ),
    case(
        "J-J7356-with-pump-line-on-2026-01-24-pump-denied-drug-not-applicable",
        claim(line("E0779", "2026-01-24"), line("J7356", "2026-01-24"), facts=J7356_FACTS, diagnoses=PD),
        NRN("misc.criteria_not_met"),
        NA,
    ),
    case(
        "J-J7356-with-pump-line-as-of-2026-01-24-pump-denied-drug-not-applicable",
        claim("E0779", "J7356", facts=J7356_FACTS, diagnoses=PD),
        NRN("misc.criteria_not_met"),
        NA,
        as_of=datetime.date(2026, 1, 24),
    ),
]


@pytest.mark.parametrize(("c", "expected", "as_of"), SITUATION_J)
def test_situation_j_blinatumomab(policy, c, expected, as_of):
    run_case(policy, c, expected, as_of)


def test_as_of_decides_every_line_as_if_served_that_day(policy):
    """The same claim flips at the revision 22 effective date when only `as_of` changes."""
    c = blin(CD19, date="2026-03-15")
    before = decide(policy, c, as_of=datetime.date(2026, 1, 24))
    on = decide(policy, c, as_of=datetime.date(2026, 1, 25))
    served = decide(policy, c)
    check_decision(before, c, trio(NRN()))
    check_decision(on, c, trio(COV("J.blinatumomab.cd19_ph_negative")))
    check_decision(served, c, trio(COV("J.blinatumomab.cd19_ph_negative")))


# ---------------------------------------------------------------- J. 25 vials (875 units) per calendar month


def vials(*lines, history=()) -> dict[str, Any]:
    return claim(*lines, facts=RELAPSED, diagnoses=B_ALL, history=list(history))


VIAL_LIMIT = [
    case(
        "vials-history-700-plus-175-is-875-covered",
        vials(
            line("E0781", "2026-03-10"),
            line("J9039", "2026-03-10", units=175),
            history=[hist("J9039", "2026-03-03", 700)],
        ),
        COV(),
        COV("J.blinatumomab"),
    ),
    case(
        "vials-history-700-plus-176-is-876-denied",
        vials(
            line("E0781", "2026-03-10"),
            line("J9039", "2026-03-10", units=176),
            history=[hist("J9039", "2026-03-03", 700)],
        ),
        COV(),
        NRN("J.vials"),
    ),
    case(
        "vials-single-line-910-units-denied-whole",
        vials(line("E0781", "2026-03-10"), line("J9039", "2026-03-10", units=910)),
        COV(),
        NRN("J.vials"),
    ),
    case(
        "vials-second-line-carries-month-past-limit-next-month-unaffected",
        vials(
            line("E0781", "2026-03-02"),
            line("J9039", "2026-03-02", units=490),
            line("J9039", "2026-03-16", units=490),
            line("J9039", "2026-04-01", units=490),
        ),
        COV(),
        COV("J.blinatumomab"),
        NRN("J.vials"),
        COV("J.blinatumomab"),
    ),
    case(
        "vials-history-in-previous-month-not-counted",
        vials(
            line("E0781", "2026-04-01"),
            line("J9039", "2026-04-01", units=490),
            history=[hist("J9039", "2026-03-20", 875)],
        ),
        COV(),
        COV("J.blinatumomab"),
    ),
    case(
        "vials-history-on-02-28-not-counted-for-03-01",
        vials(
            line("E0781", "2026-03-01"),
            line("J9039", "2026-03-01", units=400),
            history=[hist("J9039", "2026-02-28", 700)],
        ),
        COV(),
        COV("J.blinatumomab"),
    ),
    case(
        "vials-history-on-03-01-counted-for-03-01",
        vials(
            line("E0781", "2026-03-01"),
            line("J9039", "2026-03-01", units=400),
            history=[hist("J9039", "2026-03-01", 700)],
        ),
        COV(),
        NRN("J.vials"),
    ),
    case(
        "vials-owned-pump-single-line-910-units-denied",
        claim(line("J9039", "2026-03-10", units=910), facts=merge(RELAPSED, owned_pump="E0781"), diagnoses=B_ALL),
        NRN("J.vials"),
    ),
    case(
        "vials-owned-pump-875-units-covered",
        claim(line("J9039", "2026-03-10", units=875), facts=merge(RELAPSED, owned_pump="E0781"), diagnoses=B_ALL),
        COV("J.blinatumomab"),
    ),
    case(
        "vials-other-drug-history-not-counted",
        vials(
            line("E0781", "2026-03-10"),
            line("J9039", "2026-03-10", units=175),
            history=[hist("J9039", "2026-03-03", 700), hist("J9190", "2026-03-04", 900)],
        ),
        COV(),
        COV("J.blinatumomab"),
    ),
]


@pytest.mark.parametrize(("c", "expected", "as_of"), VIAL_LIMIT)
def test_blinatumomab_vial_limit(policy, c, expected, as_of):
    run_case(policy, c, expected, as_of)


# ---------------------------------------------------------------- MISCELLANEOUS

IRON = {"infusion_hours": 24}  # deferoxamine needs no criteria set; infusion_hours settles the A4222 rule
NOT_IRON = ["D50.9"]
FOLLOWERS = ("A4221", "A4222", "K0552", "A4602", "K0601", "K0602", "K0603", "K0604", "K0605")


def unlicensed_claim() -> dict[str, Any]:
    return claim(
        "E0791", "E0776", "J0895", "A4221", "K0601", "99213", facts=IRON, diagnoses=CHRONIC_IRON, licensed=False
    )


MISCELLANEOUS = [
    # drugs and supplies follow the pump
    case(
        "follow-covered-pump-covers-drug-and-supplies",
        claim("E0781", "J0895", *FOLLOWERS, facts=IRON, diagnoses=CHRONIC_IRON),
        COV("commonly_used.deferoxamine"),
        COV("misc.follow_pump"),
        *[COV("misc.follow_pump")] * len(FOLLOWERS),
    ),
    case(
        "follow-denied-pump-denies-drug-and-supplies",
        claim("E0781", "J0895", *FOLLOWERS, facts=IRON, diagnoses=NOT_IRON),
        NRN("misc.criteria_not_met"),
        NRN(),
        *[NRN("misc.follow_pump")] * len(FOLLOWERS),
    ),
    case(
        "follow-pending-pump-makes-drug-and-supplies-pending",
        claim("E0779", "J2270", "A4221", "K0552"),
        *[PEND("intractable_cancer_pain")] * 4,
    ),
    case(
        "follow-pump-without-drug-line-decided-by-pump_drug-covered",
        claim("E0781", "A4221", facts={"pump_drug": "J0895"}, diagnoses=CHRONIC_IRON),
        COV("commonly_used.deferoxamine"),
        COV("misc.follow_pump"),
    ),
    case(
        "follow-pump-without-drug-line-or-pump_drug-pending", claim("E0781", diagnoses=CHRONIC_IRON), PEND("pump_drug")
    ),
    case(
        "follow-supplies-of-pump-without-drug-pending-on-pump_drug",
        claim("E0781", "A4221", "K0601", diagnoses=CHRONIC_IRON),
        *[PEND("pump_drug")] * 3,
    ),
    case(
        "follow-pump-covered-for-deferoxamine-not-for-meperidine",
        claim("E0781", "J0895", "J2175", facts=merge(SET1, PAIN), diagnoses=CHRONIC_IRON),
        COV("commonly_used.deferoxamine"),
        COV("misc.follow_pump"),
        NRN("B.except_meperidine"),
    ),
    # owned pump, no pump line
    case(
        "owned-pump-drug-and-supplies-covered-when-criteria-hold",
        claim("J0895", "A4221", "K0601", facts={"owned_pump": "E0781"}, diagnoses=CHRONIC_IRON),
        COV("misc.follow_pump"),
        COV("misc.follow_pump"),
        COV("misc.follow_pump"),
    ),
    case(
        "owned-pump-drug-covered-without-aca-documentation",
        claim("J0895", facts={"owned_pump": "E0781"}, diagnoses=CHRONIC_IRON, aca=False),
        COV("misc.follow_pump"),
    ),
    case(
        "owned-pump-drug-denied-when-criteria-fail",
        claim("J0895", "A4221", facts={"owned_pump": "E0781"}, diagnoses=NOT_IRON),
        NRN(),
        NRN(),
    ),
    case(
        "owned-pump-acyclovir-set2-covered",
        claim("J0133", facts=merge(SET2, owned_pump="E0781")),
        COV("C.antifungal_antiviral"),
    ),
    case(
        "owned-pump-acyclovir-criteria-set-fails-denied",
        claim("J0133", facts=merge(SET2, owned_pump="E0781", toxicity_requires_controlled_rate=False)),
        NRN(),
    ),
    case(
        "no-pump-line-no-owned-pump-drug-and-supplies-denied",
        claim("J0895", "A4221", "K0601", diagnoses=CHRONIC_IRON),
        NRN("misc.follow_pump"),
        NRN("misc.follow_pump"),
        NRN("misc.follow_pump"),
    ),
    # heparin for thromboembolic disease / pulmonary embolism
    case(
        "heparin-pulmonary-embolism-I26.99-denied",
        pump_claim("J1644", SET1, ["I26.99"]),
        NRN(),
        NRN("misc.heparin"),
        NRN(),
    ),
    case(
        "heparin-pulmonary-embolism-without-criteria-facts-denied",
        pump_claim("J1644", {}, ["I26.99"]),
        *trio(NRN("misc.heparin")),
    ),
    case(
        "heparin-owned-pump-denied",
        claim("J1644", facts=merge(SET1, owned_pump="E0781"), diagnoses=["I26.99"]),
        NRN("misc.heparin"),
    ),
    case("heparin-dvt-I82.401-denied", pump_claim("J1644", SET1, ["I82.401"]), NRN(), NRN("misc.heparin"), NRN()),
    # infusion controller
    case("E1399-alone-denied", claim("E1399"), NRN("misc.infusion_controller")),
    case(
        "E1399-with-covered-pump-denied",
        claim("E0781", "J0895", "E1399", diagnoses=CHRONIC_IRON),
        COV(),
        COV(),
        NRN("misc.infusion_controller"),
    ),
    # IV pole
    case(
        "iv-pole-with-covered-stationary-E0791-covered",
        claim("E0791", "E0776", "J0895", diagnoses=CHRONIC_IRON),
        COV(),
        COV("misc.iv_pole"),
        COV(),
    ),
    case(
        "iv-pole-with-ambulatory-E0779-denied",
        claim("E0779", "E0776", "J0895", diagnoses=CHRONIC_IRON),
        COV(),
        NRN("misc.iv_pole_ambulatory"),
        COV(),
    ),
    case(
        "iv-pole-with-ambulatory-E0780-denied",
        claim("E0780", "E0776", "J0895", diagnoses=CHRONIC_IRON),
        COV(),
        NRN("misc.iv_pole_ambulatory"),
        COV(),
    ),
    case(
        "iv-pole-with-covered-E0781-not-stationary-denied",
        claim("E0781", "E0776", "J0895", diagnoses=CHRONIC_IRON),
        COV(),
        NRN(),
        COV(),
    ),
    case(
        "iv-pole-with-covered-E0791-and-ambulatory-E0779-denied",
        claim("E0791", "E0779", "E0776", "J0895", diagnoses=CHRONIC_IRON),
        COV(),
        COV(),
        NRN("misc.iv_pole_ambulatory"),
        COV(),
    ),
    case(
        "iv-pole-with-pending-E0791-pending", claim("E0791", "E0776", "J2270"), *[PEND("intractable_cancer_pain")] * 3
    ),
    case("iv-pole-alone-denied", claim("E0776", diagnoses=CHRONIC_IRON), NRN()),
    case("iv-pole-with-denied-E0791-denied", claim("E0791", "E0776", "J0895", diagnoses=NOT_IRON), NRN(), NRN(), NRN()),
    # A4221 between pump use, at most 4 weeks
    case(
        "A4221-4-weeks-no-pump-line-covered",
        claim(line("A4221", units=4), facts={"owned_pump": "E0781", "pump_drug": "J0895"}, diagnoses=CHRONIC_IRON),
        COV("misc.follow_pump"),
    ),
    case(
        "A4221-5-weeks-no-pump-line-denied",
        claim(line("A4221", units=5), facts={"owned_pump": "E0781", "pump_drug": "J0895"}, diagnoses=CHRONIC_IRON),
        NRN("misc.a4221_between_pump_use"),
    ),
    case(
        "A4221-5-weeks-with-pump-line-covered",
        claim("E0781", "J0895", line("A4221", units=5), diagnoses=CHRONIC_IRON),
        COV(),
        COV(),
        COV("misc.follow_pump"),
    ),
    # insulin pump supplies
    case(
        "A4224-A4225-with-E0784-refer-insulin-policy",
        claim("E0784", "A4224", "A4225", diagnoses=["E10.9"]),
        REFER(INSULIN_POLICY),
        REFER(INSULIN_POLICY, "misc.insulin_supplies"),
        REFER(INSULIN_POLICY, "misc.insulin_supplies"),
    ),
    case(
        "A4225-with-E0781-incorrect-coding",
        claim("E0781", "J0895", "A4225", diagnoses=CHRONIC_IRON),
        COV(),
        COV(),
        INC("misc.insulin_supplies_wrong_pump"),
    ),
    case(
        "A4224-with-K0455-incorrect-coding",
        claim("K0455", "J1325", "A4224", facts=merge(SET1, E_ITEMS), diagnoses=PH),
        COV(),
        COV(),
        INC("misc.insulin_supplies_wrong_pump"),
    ),
    # A4222: one cassette or bag per dose for intermittent infusions
    case(
        "A4222-intermittent-4-bags-3-doses-denied",
        claim("E0781", "J0133", line("A4222", units=4), facts=merge(SET2, doses=3)),
        COV(),
        COV(),
        NRN("misc.cassettes_per_dose"),
    ),
    case(
        "A4222-intermittent-3-bags-3-doses-covered",
        claim("E0781", "J0133", line("A4222", units=3), facts=merge(SET2, doses=3)),
        COV(),
        COV(),
        COV("misc.follow_pump"),
    ),
    case(
        "A4222-intermittent-2-bags-3-doses-covered",
        claim("E0781", "J0133", line("A4222", units=2), facts=merge(SET2, doses=3)),
        COV(),
        COV(),
        COV("misc.follow_pump"),
    ),
    case(
        "A4222-continuous-4-bags-3-doses-covered",
        claim("E0781", "J0133", line("A4222", units=4), facts=merge(SET1, doses=3)),
        COV(),
        COV(),
        COV("misc.follow_pump"),
    ),
    case(
        "A4222-8h-infusion-is-not-intermittent-4-bags-3-doses-covered",
        claim("E0781", "J0133", line("A4222", units=4), facts=merge(SET1, infusion_hours=8, doses=3)),
        COV(),
        COV(),
        COV("misc.follow_pump"),
    ),
    case(
        "A4222-line-fact-doses-overrides-claim-fact-covered",
        claim("E0781", "J0133", line("A4222", units=4, facts={"doses": 4}), facts=merge(SET2, doses=3)),
        COV(),
        COV(),
        COV("misc.follow_pump"),
    ),
    case(
        "A4222-intermittent-doses-unknown-pending",
        claim("E0781", "J0133", line("A4222", units=4), facts=SET2),
        COV(),
        COV(),
        PEND("doses"),
    ),
    # drugs dispensed but not used for unforeseen circumstances (JW)
    case(
        "JW-wasted-drug-with-covered-pump-covered",
        claim("E0781", "J0895", line("J0895", units=2, modifiers=["JW"]), diagnoses=CHRONIC_IRON),
        COV(),
        COV(),
        COV(),
    ),
    case(
        "JW-wasted-drug-with-denied-pump-denied",
        claim("E0781", "J0895", line("J0895", units=2, modifiers=["JW"]), diagnoses=NOT_IRON),
        NRN(),
        NRN(),
        NRN(),
    ),
    # dispensing entity licensed in its state
    case(
        "unlicensed-supplier-every-governed-line-denied",
        unlicensed_claim(),
        *[NRN("misc.licensed_dispensing_entity")] * 5,
        NA,
    ),
    case(
        "licensed-supplier-explicit-true-covered",
        claim("E0791", "E0776", "J0895", "A4221", facts=IRON, diagnoses=CHRONIC_IRON, licensed=True),
        COV(),
        COV(),
        COV(),
        COV(),
    ),
    # compounded drugs
    case(
        "J7999-billed-with-pump-denied",
        claim("E0781", "J0895", "J7999", diagnoses=CHRONIC_IRON),
        SKIP,
        COV(),
        NRN("misc.compounded_noc_with_pump"),
    ),
    case(
        "compounded-J0895-not-J7999-or-Q9977-incorrect-coding",
        claim("E0781", line("J0895", facts={"compounded": True}), diagnoses=CHRONIC_IRON),
        SKIP,
        INC("misc.compounded_coding"),
    ),
    case(
        "compounded-false-J0895-covered",
        claim("E0781", line("J0895", facts={"compounded": False}), diagnoses=CHRONIC_IRON),
        COV(),
        COV(),
    ),
]


@pytest.mark.parametrize(("c", "expected", "as_of"), MISCELLANEOUS)
def test_miscellaneous(policy, c, expected, as_of):
    run_case(policy, c, expected, as_of)


def test_compounded_drug_coded_q9977_is_not_incorrect_coding(policy):
    """Q9977 and J7999 are the codes the policy asks for; a compounded Q9977 line is not incorrect coding."""
    c = claim("E0781", "J0895", line("Q9977", facts={"compounded": True}), diagnoses=CHRONIC_IRON)
    decision = decide(policy, c)
    q = decision["lines"][2]
    assert q["outcome"] != "error", q
    assert q.get("category") != "incorrect_coding", q
    assert "misc.compounded_coding" not in [r["rule"] for r in q.get("reasons", ())], q


# ---------------------------------------------------------------- Exclusions and codes outside the policy

EXCLUDED = [
    *[
        pytest.param(code, NRN("exclusions.disposable"), id=f"{code}-disposable-not-reasonable-and-necessary")
        for code in ("A4305", "A4306", "A4223")
    ],
    *[
        pytest.param(code, NC("exclusions.non_covered"), id=f"{code}-non-covered")
        for code in ("A4244", "A4245", "A4246", "A4247", "A5120")
    ],
    pytest.param("A9270", NC("exclusions.convenience_items"), id="A9270-non-covered"),
    pytest.param("99213", NA, id="99213-outside-policy-not-applicable"),
    pytest.param("E0600", NA, id="E0600-outside-policy-not-applicable"),
]


@pytest.mark.parametrize(("code", "exp"), EXCLUDED)
def test_exclusions_alone(policy, code, exp):
    c = claim(code, diagnoses=CHRONIC_IRON)
    check_decision(decide(policy, c), c, [exp])


@pytest.mark.parametrize(("code", "exp"), EXCLUDED)
def test_exclusions_beside_a_covered_pump(policy, code, exp):
    """An excluded item stays excluded next to a covered pump, and does not disturb it."""
    c = claim("E0781", "J0895", "A4221", code, facts=IRON, diagnoses=CHRONIC_IRON)
    check_decision(decide(policy, c), c, [COV("commonly_used.deferoxamine"), COV(), COV(), exp])


# ---------------------------------------------------------------- Documentation (ACA 6407)


def documented(**aca) -> dict[str, Any]:
    return claim("E0781", "J0895", "A4221", facts=merge(IRON, **aca), diagnoses=CHRONIC_IRON)


DOCUMENTATION = [
    case("aca-f2f-3-weeks-before-order-covered", documented(), *trio(COV("commonly_used.deferoxamine"))),
    case(
        "aca-f2f-5-months-before-order-covered",
        documented(face_to_face_date="2025-08-05"),
        *trio(COV("commonly_used.deferoxamine")),
    ),
    case(
        "aca-f2f-7-months-before-order-denied",
        documented(face_to_face_date="2025-06-05"),
        *trio(NRN("documentation.aca_6407")),
    ),
    case(
        "aca-f2f-after-written-order-denied",
        documented(face_to_face_date="2026-01-10"),
        *trio(NRN("documentation.aca_6407")),
    ),
    case("aca-f2f-missing-pending", documented(face_to_face_date=DROP), *trio(PEND("face_to_face_date"))),
    case("aca-written-order-missing-pending", documented(written_order_date=DROP), *trio(PEND("written_order_date"))),
    case(
        "aca-documentation-not-received-before-delivery-denied",
        documented(documentation_received_before_delivery=False),
        *trio(NRN("documentation.aca_6407")),
    ),
    case(
        "aca-documentation-receipt-unknown-pending",
        documented(documentation_received_before_delivery=DROP),
        *trio(PEND("documentation_received_before_delivery")),
    ),
    case(
        "aca-f2f-7-months-on-stationary-pump-denied-iv-pole-too",
        claim("E0791", "E0776", "J0895", facts=merge(IRON, face_to_face_date="2025-06-05"), diagnoses=CHRONIC_IRON),
        NRN("documentation.aca_6407"),
        NRN(),
        NRN(),
    ),
]


@pytest.mark.parametrize(("c", "expected", "as_of"), DOCUMENTATION)
def test_documentation_aca_6407(policy, c, expected, as_of):
    run_case(policy, c, expected, as_of)


# ---------------------------------------------------------------- Medicare members

MEDICARE = [
    case(
        "medicare-every-line-refer-LCD",
        claim(
            "E0779",
            "J0895",
            "A4221",
            "E0776",
            "E1399",
            "A4305",
            "A4244",
            "A9270",
            diagnoses=CHRONIC_IRON,
            lob="medicare",
        ),
        *[REFER(LCD, "medicare.lcd")] * 8,
    ),
    case(
        "medicare-insulin-pump-refer-LCD",
        claim("E0784", "J1817", "A4224", diagnoses=["E10.9"], lob="medicare"),
        *[REFER(LCD, "medicare.lcd")] * 3,
    ),
    case(
        "medicare-unlicensed-supplier-still-refer-LCD",
        claim("E0781", "J0895", diagnoses=CHRONIC_IRON, lob="medicare", licensed=False),
        *[REFER(LCD, "medicare.lcd")] * 2,
    ),
    case(
        "medicare-criteria-not-met-still-refer-LCD",
        claim("E0781", "J0895", diagnoses=NOT_IRON, lob="medicare", aca=False),
        *[REFER(LCD, "medicare.lcd")] * 2,
    ),
    case(
        "medicaid-member-decided-by-this-policy",
        claim("E0781", "J0895", diagnoses=CHRONIC_IRON, lob="medicaid"),
        COV("commonly_used.deferoxamine"),
        COV("commonly_used.deferoxamine"),
    ),
]


@pytest.mark.parametrize(("c", "expected", "as_of"), MEDICARE)
def test_medicare_members(policy, c, expected, as_of):
    run_case(policy, c, expected, as_of)


# ---------------------------------------------------------------- malformed input


def assert_claim_error(decision: dict[str, Any], field: str) -> None:
    assert decision["outcome"] == "error", decision
    assert field in decision["message"], decision


def test_claim_without_lines_is_an_error_naming_lines(policy):
    c = claim("E0781", diagnoses=CHRONIC_IRON)
    del c["lines"]
    decision = decide(policy, c)
    assert_claim_error(decision, "lines")
    assert decision["claim"] == c["id"]


def test_claim_with_empty_lines_is_an_error_naming_lines(policy):
    c = claim("E0781", diagnoses=CHRONIC_IRON)
    c["lines"] = []
    assert_claim_error(decide(policy, c), "lines")


def test_claim_without_member_is_an_error_naming_member(policy):
    c = claim("E0781", diagnoses=CHRONIC_IRON)
    del c["member"]
    assert_claim_error(decide(policy, c), "member")


def test_bad_service_date_errors_that_line_only(policy):
    c = claim("E0781", "J0895", line("A4221", date="2026-02-30"), diagnoses=CHRONIC_IRON)
    decision = decide(policy, c)
    assert decision.get("outcome") != "error", decision
    pump, drug, bad = decision["lines"]
    assert bad["seq"] == 3
    assert bad["outcome"] == "error", bad
    assert "service_date" in bad["message"], bad
    check_line(pump, COV("commonly_used.deferoxamine"))
    check_line(drug, COV("misc.follow_pump"))


def test_non_numeric_units_errors_that_line_only(policy):
    c = claim("E0781", "J0895", line("A4221"), diagnoses=CHRONIC_IRON)
    c["lines"][2]["units"] = "two"
    decision = decide(policy, c)
    pump, drug, bad = decision["lines"]
    assert bad["outcome"] == "error" and "units" in bad["message"], bad
    check_line(pump, COV())
    check_line(drug, COV())


def test_claim_fact_of_wrong_type_is_an_error_naming_the_fact(policy):
    c = inotrope(nyha_class="four")
    decision = decide(policy, c)
    assert_claim_error(decision, "nyha_class")


def test_claim_fact_outside_its_range_is_an_error_naming_the_fact(policy):
    c = inotrope(nyha_class=5)
    assert_claim_error(decide(policy, c), "nyha_class")


def test_line_fact_of_wrong_type_errors_that_line_naming_the_fact(policy):
    c = claim("E0781", "J0895", line("A4221", facts={"compounded": "yes"}), diagnoses=CHRONIC_IRON)
    decision = decide(policy, c)
    bad = decision["lines"][2]
    assert bad["outcome"] == "error" and "compounded" in bad["message"], bad
    check_line(decision["lines"][0], COV())


def test_unknown_top_level_field_is_ignored(policy):
    c = claim("E0781", "J0895", diagnoses=CHRONIC_IRON)
    c["submitted_by"] = "clearinghouse-7"
    check_decision(decide(policy, c), c, [COV("commonly_used.deferoxamine"), COV()])


def test_batch_goes_on_after_a_malformed_claim(policy):
    bad = claim("E0781", diagnoses=CHRONIC_IRON)
    bad["lines"] = []
    good = claim("E0781", "J0895", diagnoses=CHRONIC_IRON)
    out = list(policy.decide_many([bad, good]))
    DECIDED.extend(out)
    assert out[0]["outcome"] == "error"
    check_decision(out[1], good, [COV(), COV()])


# ---------------------------------------------------------------- every covered / denied line cites the policy


def test_every_covered_or_denied_line_cites_the_policy(policy):
    """Contract section 2: each covered and denied line carries a reason naming rule, text and source.

    Runs over the decisions every earlier test produced, and re-decides every claim this module
    built (so the check holds when this test runs alone).
    """
    decisions = list(DECIDED) + [policy.decide(c) for c in BUILT]
    checked = 0
    for decision in decisions:
        for ln in decision.get("lines", ()):
            if ln["outcome"] not in ("covered", "denied"):
                continue
            checked += 1
            reasons = ln.get("reasons")
            assert reasons, f"{decision['claim']} line {ln['seq']}: no reasons: {ln}"
            for r in reasons:
                for key in ("rule", "text", "source"):
                    assert isinstance(r.get(key), str) and r[key].strip(), (
                        f"{decision['claim']} line {ln['seq']}: reason without {key}: {r}"
                    )
    assert checked > 100
