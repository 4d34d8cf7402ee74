"""Healthcare code lists and mixes the simulator draws from: LOINC tests, ICD-10, units, events."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabTest:
    """A LOINC-coded test with its unit and reference range."""

    code: str
    name: str
    unit: str
    low: float
    high: float


LAB_TESTS: tuple[LabTest, ...] = (
    LabTest("2345-7", "Glucose", "mg/dL", 70, 99),
    LabTest("2160-0", "Creatinine", "mg/dL", 0.6, 1.3),
    LabTest("3094-0", "Urea nitrogen", "mg/dL", 7, 20),
    LabTest("2951-2", "Sodium", "mmol/L", 135, 145),
    LabTest("2823-3", "Potassium", "mmol/L", 3.5, 5.1),
    LabTest("2075-0", "Chloride", "mmol/L", 98, 107),
    LabTest("2028-9", "Carbon dioxide", "mmol/L", 22, 29),
    LabTest("17861-6", "Calcium", "mg/dL", 8.6, 10.3),
    LabTest("718-7", "Hemoglobin", "g/dL", 12, 17.5),
    LabTest("4544-3", "Hematocrit", "%", 36, 52),
    LabTest("6690-2", "Leukocytes", "10*3/uL", 4.5, 11),
    LabTest("777-3", "Platelets", "10*3/uL", 150, 400),
    LabTest("789-8", "Erythrocytes", "10*6/uL", 4.2, 5.9),
    LabTest("4548-4", "Hemoglobin A1c", "%", 4, 5.6),
    LabTest("2093-3", "Cholesterol", "mg/dL", 125, 200),
    LabTest("2571-8", "Triglyceride", "mg/dL", 40, 150),
    LabTest("2085-9", "HDL cholesterol", "mg/dL", 40, 60),
    LabTest("13457-7", "LDL cholesterol (calc)", "mg/dL", 50, 100),
    LabTest("1742-6", "ALT", "U/L", 7, 56),
    LabTest("1920-8", "AST", "U/L", 10, 40),
    LabTest("6768-6", "Alkaline phosphatase", "U/L", 44, 147),
    LabTest("1975-2", "Bilirubin total", "mg/dL", 0.1, 1.2),
    LabTest("3016-3", "TSH", "mIU/L", 0.4, 4.0),
    LabTest("5902-2", "Prothrombin time", "s", 11, 13.5),
    LabTest("6301-6", "INR", "{INR}", 0.8, 1.1),
    LabTest("1988-5", "C reactive protein", "mg/L", 0.1, 10),
    LabTest("2524-7", "Lactate", "mmol/L", 0.5, 2.2),
    LabTest("33762-6", "NT-proBNP", "pg/mL", 5, 125),
    LabTest("10839-9", "Troponin I", "ng/mL", 0.01, 0.04),
)

ICD10_CODES: tuple[str, ...] = (
    "I10", "E11.9", "E78.5", "J18.9", "N17.9", "I50.9", "J44.1", "N39.0", "A41.9", "I48.91",
    "E87.1", "K21.9", "F32.9", "R07.9", "R50.9", "Z79.4", "I25.10", "E66.9", "G47.33", "M54.5",
    "J45.909", "K59.00", "D64.9", "R55", "S72.001A", "O80", "Z38.00", "F10.20", "I63.9", "U07.1",
)  # fmt: skip

# Nursing units by bed type; names avoid HL7 and CSV separators.
UNITS: dict[str, tuple[str, ...]] = {
    "ICU": ("ICU1", "ICU2"),
    "MEDSURG": ("3W", "4W", "5E", "6E"),
    "PEDS": ("PEDS",),
    "OB": ("OB",),
    "PSYCH": ("BH",),
    "ED": ("ED",),
}
BED_TYPE_WEIGHTS: dict[str, float] = {
    "ICU": 0.12, "MEDSURG": 0.55, "PEDS": 0.08, "OB": 0.08, "PSYCH": 0.07, "ED": 0.10,
}  # fmt: skip
FREE_BED_STATUS: tuple[tuple[str, float], ...] = (
    ("available", 0.7), ("cleaning", 0.2), ("blocked", 0.1),
)  # fmt: skip

ADT_EVENT_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("A01", 0.25), ("A02", 0.18), ("A03", 0.22), ("A08", 0.33), ("A23", 0.02),
)  # fmt: skip
ENCOUNTER_TYPES: dict[str, str] = {"I": "inpatient", "O": "outpatient", "E": "emergency"}
FINAL_RATE = 0.88  # results sent final (F); the rest preliminary (P)
CORRECTION_RATE = 0.05

# Share of archives per feed at peak, by feed name; feeds not listed get DEFAULT_FEED_WEIGHT.
FEED_WEIGHTS: dict[str, float] = {
    "adt_events": 0.35, "patient_encounters": 0.30, "lab_results": 0.25, "bed_census": 0.10,
}  # fmt: skip
DEFAULT_FEED_WEIGHT = 0.2

# Column names that mean the same thing as a context key, so new feeds get consistent values.
ALIASES: dict[str, str] = {
    "patient_id": "mrn", "medical_record_number": "mrn", "last_name": "family_name",
    "surname": "family_name", "first_name": "given_name", "dob": "birth_date",
    "date_of_birth": "birth_date", "gender": "sex", "zip": "postal_code",
    "zip_code": "postal_code", "facility": "facility_code", "facility_id": "facility_code",
    "visit_id": "visit_number", "account_number": "visit_number", "loinc_code": "test_code",
    "loinc": "test_code", "icd10_code": "code", "diagnosis_code": "code", "npi": "attending_npi",
}  # fmt: skip
