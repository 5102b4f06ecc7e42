"""Covariates of Table 1 and the comorbidity indices, as groups of real OMOP concepts.

Each group takes its concepts with their descendants (through concept_ancestor), so a
site with a full Athena vocabulary finds more codes under the same parents than the
shipped subset holds. A group names OMOP concept ids and SNOMED CT codes: the codes are
looked up in the site's concept table (vocabulary SNOMED), so a full vocabulary resolves
every component, the shipped subset those it holds.

Charlson comorbidity index, Deyo/Quan: the 17 conditions of Quan et al. (Med Care 2005)
with Charlson's weights, the milder form of a condition not counted when its severe form
is (diabetes / diabetes with chronic complications, mild / moderate-severe liver
disease, malignancy / metastatic solid tumour). Renal disease follows Quan's ICD-10 N18
(chronic kidney disease of any stage) and end-stage renal disease; malignancy leaves out
basal and squamous cell carcinoma of the skin (Quan's C44). No age points (as OHDSI's
FeatureExtraction). In the shipped vocabulary subset, peripheral vascular disease,
peptic ulcer, mild and severe liver disease, hemiplegia/paraplegia and HIV/AIDS have no
concept and score 0; with Athena's vocabulary their SNOMED codes resolve.

CHA2DS2-VASc (Lip et al., Chest 2010): heart failure 1, hypertension 1, age ≥ 75 2,
diabetes 1, stroke/TIA/thromboembolism 2, vascular disease (myocardial infarction or
peripheral vascular disease) 1, age 65-74 1, female 1. Aortic plaque has no concept here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CovariateDomain = Literal["condition", "drug", "measurement"]


@dataclass(frozen=True)
class Covariate:
    key: str
    label: str
    domain: CovariateDomain
    concepts: tuple[int, ...]  # with descendants
    snomed: tuple[str, ...] = ()  # SNOMED CT codes, looked up in the concept table
    exclude_snomed: tuple[str, ...] = ()  # removed with their descendants


CONDITIONS = (
    Covariate("hypertension", "Hypertension", "condition", (316866,)),
    Covariate("diabetes", "Diabetes mellitus", "condition", (201820,)),
    Covariate("hyperlipidemia", "Hyperlipidemia", "condition", (432867,)),
    Covariate("obesity", "Obesity", "condition", (433736,)),
    Covariate("ckd", "Chronic kidney disease", "condition", (46271022,)),
    Covariate("ckd_3_5", "Chronic kidney disease stage 3-5", "condition", (443597, 443612, 443611)),
    Covariate("af", "Atrial fibrillation", "condition", (313217,)),
    Covariate("heart_failure", "Heart failure", "condition", (316139,)),
    Covariate("mi", "Myocardial infarction", "condition", (312327,)),
    Covariate("stroke", "Stroke", "condition", (381316, 376713)),
    Covariate("copd", "COPD", "condition", (255573,)),
    Covariate("asthma", "Asthma", "condition", (317009,)),
    Covariate("dementia", "Dementia", "condition", (4182210,)),
    Covariate("depression", "Depressive disorder", "condition", (440383,)),
    Covariate(
        "cancer",
        "Malignant neoplasm",
        "condition",
        (443387, 443396, 443388, 4246127, 4112853, 4178976),
    ),
)
DRUGS = (
    Covariate("metformin", "Metformin", "drug", (1503297,)),
    Covariate("dpp4_sglt2", "Sitagliptin or empagliflozin", "drug", (1580747, 45774751)),
    Covariate("statin", "Atorvastatin", "drug", (1545958,)),
    Covariate(
        "antihypertensive",
        "Antihypertensive (amlodipine, losartan, valsartan, HCTZ, bisoprolol)",
        "drug",
        (1332418, 1367500, 1308842, 974166, 1338005),
    ),
    Covariate(
        "anticoagulant",
        "Anticoagulant (warfarin or a DOAC)",
        "drug",
        (1310149, 43013024, 40241331, 45892847),
    ),
    Covariate("antiplatelet", "Aspirin or clopidogrel", "drug", (1112807, 1322184)),
)
MEASUREMENTS = (
    Covariate("hba1c", "HbA1c (%)", "measurement", (3004410,)),
    Covariate("sbp", "Systolic blood pressure (mmHg)", "measurement", (3004249,)),
    Covariate("bmi", "Body mass index (kg/m²)", "measurement", (3038553,)),
    Covariate("ldl", "LDL cholesterol (mg/dL)", "measurement", (3009966,)),
    Covariate("creatinine", "Creatinine (mg/dL)", "measurement", (3016723,)),
)
ALL = CONDITIONS + DRUGS + MEASUREMENTS


def _cci(key: str, label: str, ids: tuple[int, ...], snomed: tuple[str, ...]) -> Covariate:
    return Covariate(f"cci_{key}", label, "condition", ids, snomed)


# Quan's 17 Charlson conditions: concept ids in the shipped vocabulary, SNOMED CT codes
CHARLSON_CONDITIONS = (
    _cci("mi", "Myocardial infarction", (4329847, 312327), ("22298006",)),
    _cci("chf", "Congestive heart failure", (316139, 4229440), ("84114007",)),
    _cci("pvd", "Peripheral vascular disease", (), ("400047006",)),
    _cci(
        "cvd",
        "Cerebrovascular disease",
        (381316, 443454, 376713),
        ("62914000", "230690007", "266257000"),
    ),
    _cci("dementia", "Dementia", (4182210, 378419, 4043241), ("52448006",)),
    _cci(
        "cpd",
        "Chronic pulmonary disease",
        (255573, 317009, 261325, 258780),
        ("13645005", "195967001", "87433001", "63480004"),
    ),
    _cci("rheumatic", "Rheumatic disease", (80809,), ("69896004", "55464009")),
    _cci("pud", "Peptic ulcer disease", (), ("13200003",)),
    _cci("mild_liver", "Mild liver disease", (), ("328383001", "19943007", "128302006")),
    Covariate(
        "cci_diabetes",
        "Diabetes without chronic complication",
        "condition",
        (201820,),
        ("73211009",),
        exclude_snomed=("11687002",),  # gestational diabetes is not E10-E14
    ),
    _cci(
        "diabetes_complicated",
        "Diabetes with chronic complication",
        (192279, 4226121, 37016354, 43530656, 43530685, 45757499, 45769905, 45770830, 45763582),
        ("74627003",),
    ),
    _cci("hemiplegia", "Hemiplegia or paraplegia", (), ("50582007", "60389000")),
    _cci("renal", "Renal disease", (46271022, 193782), ("709044004", "46177005")),
    Covariate(
        "cci_malignancy",
        "Any malignancy, including lymphoma and leukaemia",
        "condition",
        (443387, 443396, 443388, 4246127, 4112853, 4178976, 4180790, 443390, 4110591, 4115276),
        ("363346000", "118600007", "93143009"),
        exclude_snomed=("254701007", "254651007"),  # basal / squamous cell skin carcinoma
    ),
    _cci(
        "severe_liver", "Moderate or severe liver disease", (), ("34742003", "28670008", "59927004")
    ),
    _cci("metastatic", "Metastatic solid tumour", (4196262, 4311765), ("128462008",)),
    _cci("hiv", "HIV/AIDS", (), ("86406008",)),
)
# Charlson's weights; a condition in the second place does not count when the first does
CHARLSON_WEIGHTS = {
    "cci_mi": 1,
    "cci_chf": 1,
    "cci_pvd": 1,
    "cci_cvd": 1,
    "cci_dementia": 1,
    "cci_cpd": 1,
    "cci_rheumatic": 1,
    "cci_pud": 1,
    "cci_mild_liver": 1,
    "cci_diabetes": 1,
    "cci_diabetes_complicated": 2,
    "cci_hemiplegia": 2,
    "cci_renal": 2,
    "cci_malignancy": 2,
    "cci_severe_liver": 3,
    "cci_metastatic": 6,
    "cci_hiv": 6,
}
CHARLSON_HIERARCHY = (
    ("cci_diabetes_complicated", "cci_diabetes"),
    ("cci_severe_liver", "cci_mild_liver"),
    ("cci_metastatic", "cci_malignancy"),
)
# CHA2DS2-VASc's stroke: stroke, TIA or thromboembolism (SNOMED 371039008)
CHADS_STROKE = Covariate(
    "chads_stroke",
    "Stroke, TIA or thromboembolism",
    "condition",
    (381316, 443454, 376713),
    ("230690007", "266257000", "371039008"),
)
INDEX_CONDITIONS = (*CHARLSON_CONDITIONS, CHADS_STROKE)  # scored, not shown as rows
