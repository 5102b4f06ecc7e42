"""Characterization and time at risk read the CDW through the query model: the same
features on every engine."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from pmhub.cohorts import characterize, outcomes
from pmhub.cohorts.definition import Definition, parse
from tests.backends.conftest import SpecSite

DATA = """
person
  person_id | year_of_birth | gender_concept_id
  1         | 1940          | 8532
  2         | 1950          | 8507

observation_period
  person_id | observation_period_start_date | observation_period_end_date
  1         | 2010-01-01                    | 2020-12-31
  2         | 2010-01-01                    | 2020-12-31

condition_occurrence
  person_id | condition_concept_id | condition_start_date
  1         | 313217               | 2018-01-01
  1         | 320128               | 2017-06-01
  1         | 201826               | 2017-07-01
  1         | 316139               | 2017-09-01
  2         | 313217               | 2018-01-01
  2         | 312327               | 2017-12-01
  2         | 443597               | 2017-12-01
  2         | 443454               | 2019-03-01

measurement
  person_id | measurement_concept_id | measurement_date | value_as_number
  1         | 3004410                | 2017-08-01       | 7.0
  1         | 3004410                | 2017-11-01       | 8.0

death
  person_id | death_date
  1         | 2019-01-01
"""


def _cohort(id_: int, concept: int) -> Definition:
    return parse(
        {
            "format_version": 1,
            "id": id_,
            "name": str(id_),
            "concept_sets": [{"id": "c", "items": [{"concept_id": concept}]}],
            "entry": {"criteria": [{"domain": "condition", "concept_set": "c"}]},
        }
    )


def test_person_features_and_time_at_risk(site: SpecSite) -> None:
    site.load(DATA)
    site.run(_cohort(41, 313217))
    site.run(_cohort(42, 443454))
    features = characterize.person_features(site.engine, 41).set_index("person_id")
    assert features.loc[1, "age"] == 78
    assert features.loc[1, "female"] == 1
    assert features.loc[1, "hypertension"] == 1
    assert features.loc[2, "hypertension"] == 0
    assert features.loc[1, "hba1c"] == pytest.approx(7.5)
    assert (features.loc[1, "charlson"], features.loc[2, "charlson"]) == (2, 3)
    assert (features.loc[1, "chads_vasc"], features.loc[2, "chads_vasc"]) == (6, 2)
    risk = outcomes.time_at_risk(site.engine, 41, 42).set_index("person_id")
    assert risk.loc[2, "event"] == 1
    assert risk.loc[2, "end"] == pd.Timestamp(dt.date(2019, 3, 1))
    assert (risk.loc[1, "event"], risk.loc[1, "competing"]) == (0, 1)
    assert risk.loc[1, "end"] == pd.Timestamp(dt.date(2019, 1, 1))


SCORES = """
person
  person_id | year_of_birth | gender_concept_id
  1         | 1940          | 8532
  2         | 1950          | 8507
  3         | 1990          | 8532
  4         | 1945          | 8507

observation_period
  person_id | observation_period_start_date | observation_period_end_date
  1         | 2010-01-01                    | 2020-12-31
  2         | 2010-01-01                    | 2020-12-31
  3         | 2010-01-01                    | 2020-12-31
  4         | 2010-01-01                    | 2020-12-31

condition_occurrence
  person_id | condition_concept_id | condition_start_date
  1         | 313217               | 2018-01-01
  1         | 316139               | 2016-06-01
  1         | 201826               | 2017-03-01
  1         | 4226121              | 2017-04-01
  1         | 4180790              | 2017-05-01
  1         | 4311765              | 2017-06-01
  1         | 80809                | 2017-07-01
  1         | 378419               | 2017-08-01
  1         | 316866               | 2018-01-01
  1         | 255573               | 2018-06-01
  2         | 313217               | 2018-01-01
  2         | 4329847              | 2017-12-01
  2         | 443601               | 2017-02-01
  2         | 193782               | 2017-03-01
  2         | 376713               | 2017-04-01
  2         | 317009               | 2017-05-01
  2         | 261325               | 2017-06-01
  3         | 313217               | 2018-01-01
  3         | 4024659              | 2017-08-01
  3         | 4112853              | 2017-09-01
  4         | 313217               | 2018-01-01
"""


def test_charlson_and_cha2ds2_vasc_by_hand(site: SpecSite) -> None:
    site.load(SCORES)
    site.run(_cohort(43, 313217))
    features = characterize.person_features(site.engine, 43).set_index("person_id")
    # 1: diabetes with retinopathy 2 (not also 1), colon cancer with metastasis 6 (not also
    #    2), rheumatoid arthritis 1, Alzheimer's 1; heart failure before the window and
    #    COPD after the index do not count. CHA2DS2-VASc: HT 1, age 78 2, DM 1, female 1
    # 2: MI 1, CKD 2 and ESRD 2 (one renal condition: 2), cerebral haemorrhage 1, asthma
    #    and emphysema 1. CHA2DS2-VASc: age 68 1, stroke 2, vascular (MI) 1
    # 3: gestational diabetes is not Charlson's diabetes; breast cancer 2. CHA2DS2-VASc:
    #    female 1 (gestational diabetes is not its D either)
    # 4: nothing; CHA2DS2-VASc: age 73 1
    assert features["charlson"].to_dict() == {1: 10, 2: 5, 3: 2, 4: 0}
    assert features["chads_vasc"].to_dict() == {1: 5, 2: 4, 3: 1, 4: 1}
