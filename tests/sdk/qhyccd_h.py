"""The prototypes of QHYCCD's qhyccd.h that the SDK backend and the stub use, and a small C
prototype reader to compare them with (the ctypes table in sdk_bindings.py, the stub's C).

Source, transcribed by hand (the vendor header is not installed here): indilib/indi-3rdparty
`libqhy/qhyccd.h` @6e72360e37398fe708b1e6a7fe102c3ad8dbe63d, the header of the QHY SDK that
INDI ships as libqhy (SOVERSION 20, the same as the qhyccd wheel's libqhyccd.so.20). EXPORTC
is `extern "C"` and STDCALL is empty on Linux, so they are left out. Types from its includes
(qhyccdstruct.h): `typedef void qhyccd_handle;`, CONTROL_ID an int-sized C enum.

`abi_type()` reduces a C type to what the calling convention sees: the integer width and
signedness, double, bool (one byte), void, or a pointer to one of those (`char` and
`uint8_t` count as the same byte; `void *` and `qhyccd_handle *` as the same opaque pointer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEADER_SOURCE = ("indilib/indi-3rdparty libqhy/qhyccd.h "
                 "@6e72360e37398fe708b1e6a7fe102c3ad8dbe63d")

QHYCCD_H = """
void SetQHYCCDAutoDetectCamera(bool enable);
void SetQHYCCDLogLevel(uint8_t logLevel);
void EnableQHYCCDMessage(bool enable);
void EnableQHYCCDLogFile(bool enable);
uint32_t SetQHYCCDSingleFrameTimeOut(qhyccd_handle *h,uint32_t time);
uint32_t InitQHYCCDResource(void);
uint32_t ReleaseQHYCCDResource(void);
uint32_t ScanQHYCCD(void);
uint32_t GetQHYCCDId(uint32_t index,char *id);
uint32_t GetQHYCCDModel(char *id, char *model);
qhyccd_handle * OpenQHYCCD(char *id);
uint32_t CloseQHYCCD(qhyccd_handle *handle);
uint32_t SetQHYCCDStreamMode(qhyccd_handle *handle,uint8_t mode);
uint32_t InitQHYCCD(qhyccd_handle *handle);
uint32_t IsQHYCCDControlAvailable(qhyccd_handle *handle,CONTROL_ID controlId);
uint32_t GetQHYCCDControlName(qhyccd_handle *handle,CONTROL_ID controlId,char *IDname);
uint32_t SetQHYCCDParam(qhyccd_handle *handle,CONTROL_ID controlId, double value);
double GetQHYCCDParam(qhyccd_handle *handle,CONTROL_ID controlId);
uint32_t GetQHYCCDParamMinMaxStep(qhyccd_handle *handle,CONTROL_ID controlId,double *min,
    double *max,double *step);
uint32_t SetQHYCCDResolution(qhyccd_handle *handle,uint32_t x,uint32_t y,uint32_t xsize,
    uint32_t ysize);
uint32_t GetQHYCCDMemLength(qhyccd_handle *handle);
uint32_t ExpQHYCCDSingleFrame(qhyccd_handle *handle);
uint32_t GetQHYCCDSingleFrame(qhyccd_handle *handle,uint32_t *w,uint32_t *h,uint32_t *bpp,
    uint32_t *channels,uint8_t *imgdata);
uint32_t CancelQHYCCDExposing(qhyccd_handle *handle);
uint32_t CancelQHYCCDExposingAndReadout(qhyccd_handle *handle);
uint32_t BeginQHYCCDLive(qhyccd_handle *handle);
uint32_t GetQHYCCDLiveFrame(qhyccd_handle *handle,uint32_t *w,uint32_t *h,uint32_t *bpp,
    uint32_t *channels,uint8_t *imgdata);
uint32_t StopQHYCCDLive(qhyccd_handle *handle);
uint32_t SetQHYCCDBinMode(qhyccd_handle *handle,uint32_t wbin,uint32_t hbin);
uint32_t SetQHYCCDBitsMode(qhyccd_handle *handle,uint32_t bits);
uint32_t ControlQHYCCDTemp(qhyccd_handle *handle,double targettemp);
uint32_t SetQHYCCDTrigerFunction(qhyccd_handle *h,bool value);
uint32_t GetQHYCCDChipInfo(qhyccd_handle *h,double *chipw,double *chiph,uint32_t *imagew,
    uint32_t *imageh,double *pixelw,double *pixelh,uint32_t *bpp);
uint32_t GetQHYCCDEffectiveArea(qhyccd_handle *h,uint32_t *startX, uint32_t *startY,
    uint32_t *sizeX, uint32_t *sizeY);
uint32_t GetQHYCCDOverScanArea(qhyccd_handle *h,uint32_t *startX, uint32_t *startY,
    uint32_t *sizeX, uint32_t *sizeY);
uint32_t GetQHYCCDFWVersion(qhyccd_handle *h,uint8_t *buf);
uint32_t GetQHYCCDFPGAVersion(qhyccd_handle *h, uint8_t fpga_index, uint8_t *buf);
uint32_t GetQHYCCDHumidity(qhyccd_handle *handle,double *hd);
uint32_t QHYCCDVendRequestRead(qhyccd_handle *h, uint8_t req, uint16_t value, uint16_t index1,
    uint32_t length, uint8_t *data);
uint32_t GetQHYCCDSDKVersion(uint32_t *year,uint32_t *month,uint32_t *day,uint32_t *subday);
uint32_t GetQHYCCDNumberOfReadModes(qhyccd_handle *h,uint32_t *numModes);
uint32_t GetQHYCCDReadModeResolution(qhyccd_handle *h,uint32_t modeNumber, uint32_t* width,
    uint32_t* height);
uint32_t GetQHYCCDReadModeName(qhyccd_handle *h,uint32_t modeNumber, char* name);
uint32_t SetQHYCCDReadMode(qhyccd_handle *h,uint32_t modeNumber);
uint32_t GetQHYCCDReadMode(qhyccd_handle *h,uint32_t* modeNumber);
uint32_t EnableQHYCCDBurstMode(qhyccd_handle *h,bool i);
uint32_t SetQHYCCDBurstModeStartEnd(qhyccd_handle *h,unsigned short start,unsigned short end);
uint32_t EnableQHYCCDBurstCountFun(qhyccd_handle *h,bool i);
uint32_t ResetQHYCCDFrameCounter(qhyccd_handle *h);
uint32_t SetQHYCCDBurstIDLE(qhyccd_handle *h);
uint32_t ReleaseQHYCCDBurstIDLE(qhyccd_handle *h);
uint32_t SetQHYCCDBurstModePatchNumber(qhyccd_handle *h,uint32_t value);
uint32_t SetQHYCCDEnableLiveModeAntiRBI(qhyccd_handle *h,uint32_t value);
uint32_t SetQHYCCDWriteFPGA(qhyccd_handle *h,uint8_t number,uint8_t regindex,uint8_t regvalue);
uint32_t EnableQHYCCDImageOSD(qhyccd_handle *h,uint32_t i);
uint32_t GetQHYCCDPreciseExposureInfo(qhyccd_handle *h, uint32_t *PixelPeriod_ps,
    uint32_t *LinePeriod_ns, uint32_t *FramePeriod_us, uint32_t *ClocksPerLine,
    uint32_t *LinesPerFrame, uint32_t *ActualExposureTime, uint8_t *isLongExposureMode);
"""

# C scalar type -> (ABI class); pointers add a leading "*".
_SCALARS = {
    "void": "void",
    "bool": "bool",
    "_Bool": "bool",
    "char": "byte",
    "unsigned char": "byte",
    "uint8_t": "byte",
    "uint16_t": "uint16",
    "unsigned short": "uint16",
    "uint32_t": "uint32",
    "unsigned int": "uint32",
    "unsigned": "uint32",
    "int": "int32",
    "int32_t": "int32",
    "unsigned long": "uint64",  # LP64 (the stub's test hooks)
    "CONTROL_ID": "int32",  # a plain C enum: int-sized (qhyccdstruct.h)
    "double": "double",
    "qhyccd_handle": "void",  # typedef void qhyccd_handle
}


@dataclass(frozen=True, slots=True)
class Prototype:
    name: str
    restype: str  # an ABI class (see abi_type)
    argtypes: tuple[str, ...]


def abi_type(c_type: str) -> str:
    """`uint32_t *` -> '*uint32', `qhyccd_handle *` -> '*void', `CONTROL_ID` -> 'int32';
    an array parameter (`uint32_t out[5]`) is a pointer as in C."""
    text = " ".join(c_type.replace("const ", "").split())
    pointers = text.count("*")
    base = text.replace("*", "").strip()
    if base not in _SCALARS:
        raise ValueError(f"unknown C type {c_type!r}")
    return "*" * pointers + _SCALARS[base]


def _parameter_type(parameter: str) -> str:
    """The type of one parameter declaration (its name dropped; `[n]` makes it a pointer)."""
    text = " ".join(parameter.split())
    array = "[" in text
    text = re.sub(r"\[[^\]]*\]", "", text).strip()
    match = re.fullmatch(r"(.*?[\s*])(\w+)", text)
    c_type = match.group(1) if match and match.group(1).strip() else text
    return abi_type(c_type + ("*" if array else ""))


DECLARATION = re.compile(r"([A-Za-z_][\w\s]*?[\s*]+)([A-Za-z_]\w*)\s*\(([^)]*)\)", re.S)


def parse_prototypes(text: str) -> dict[str, Prototype]:
    """Every `<type> Name(<parameters>)` declaration or definition head in `text`."""
    prototypes = {}
    for match in DECLARATION.finditer(text):
        restype, name, parameters = match.groups()
        restype = re.sub(r"\b(EXPORTC|EXPORTFUNC|EXPORT|STDCALL|static|inline|extern)\b", "",
                         restype)
        params = [p for p in parameters.split(",") if p.strip()]
        if params == ["void"] or [p.strip() for p in params] == ["void"]:
            params = []
        prototypes[name] = Prototype(name, abi_type(restype),
                                     tuple(_parameter_type(p) for p in params))
    return prototypes


PROTOTYPES: dict[str, Prototype] = parse_prototypes(QHYCCD_H)
