"""Covariates of Table 1 and the comorbidity indices, as groups of real OMOP concepts.

Each group takes its concepts with their descendants (through concept_ancestor), so a
site with a full Athena vocabulary finds more codes under the same parents than the
shipped subset holds.

Charlson (Quan's weights) uses the components whose SNOMED concepts the shipped
vocabulary has: myocardial infarction, heart failure, cerebrovascular disease, dementia,
chronic pulmonary disease, diabetes, renal disease (CKD stage 3-5) and malignancy.
Peripheral vascular, rheumatic, ulcer and liver disease, hemiplegia, metastatic tumour and
AIDS are not in the shipped subset and score 0 there. CHA2DS2-VASc is complete except
that vascular disease is myocardial infarction only (no peripheral-artery concept).
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

# Charlson et al. 1987: component → (weight, covariates any of which scores it)
CHARLSON: dict[str, tuple[int, tuple[str, ...]]] = {
    "myocardial infarction": (1, ("mi",)),
    "congestive heart failure": (1, ("heart_failure",)),
    "cerebrovascular disease": (1, ("stroke",)),
    "dementia": (1, ("dementia",)),
    "chronic pulmonary disease": (1, ("copd", "asthma")),
    "diabetes": (1, ("diabetes",)),
    "moderate or severe renal disease": (2, ("ckd_3_5",)),
    "malignancy": (2, ("cancer",)),
}
