/*
 * A stand-in for QHYCCD's libqhyccd, for tests: the same C function names and signatures
 * (reference qhy-sdk-and-drivers.md section 1), over a small model of one QHY42PRO.
 *
 * What it is for: running the SDK backend's ctypes layer, its one SDK thread and its error
 * paths for real, without a camera. It models read modes (HDR 4096x2048 and two STD modes),
 * gain, offset (the pedestal), binning (the average of the bin), a hardware ROI in binned
 * pixels, 8/16-bit output (12-bit data left-shifted into 16-bit words, or its top 8 bits), a
 * little read noise, rolling-shutter timing (whole line periods), a first-order TEC, the
 * anti-dew heater, an FPGA register file, live frames with a frame counter in the head,
 * burst mode, and a camera that vanishes and returns.
 *
 * What it is not: not the sensor physics (the Python simulator models those) and not a
 * reproduction of QHYCCD's code: everything here is written from the documented behaviour.
 *
 * Checks it makes of its caller (counted, read by the tests through stub_* functions):
 *   - every call comes from one thread (the first that called InitQHYCCDResource);
 *   - after SetQHYCCDBinMode answered QHYCCD_DELAY_200MS, nothing touches the camera for
 *     200 ms;
 *   - a read-mode, stream-mode or bits change is followed by InitQHYCCD before an exposure,
 *     and InitQHYCCD resets binning, ROI and bit depth (so the caller must re-apply them).
 *
 * Test hooks: stub_vanish() / stub_return(), or the file named by QHY42_STUB_UNPLUGGED_FILE
 * (the camera is gone while that file exists: a daemon under test can be unplugged from
 * another process). QHY42_STUB_TIME_SCALE runs the TEC faster than real time.
 * A second QHY42PRO on the bus: while the file named by QHY42_STUB_SECOND_CAMERA_FILE exists,
 * the scan also finds SECOND_ID_TEXT (for the daemon's roster); the stub models one sensor, so
 * opening the second camera fails (and says so on stderr).
 * QHY42_STUB_HEATER_ID moves CONTROL_HEATINGBOARD to another CONTROL_ID number (the SDK
 * backend must find it by name).
 *
 * A USB link that stops answering: while the file named by QHY42_STUB_HANG_FILE exists, a
 * call of a function listed in it (names separated by blanks, commas or new lines; an empty
 * file means GetQHYCCDParam) does not return: it sleeps until the file is removed, then goes
 * on as usual. stub_hung_calls() counts the calls that hung.
 *
 * Handles: each OpenQHYCCD returns a handle of its own (up to MAX_HANDLES), valid until
 * CloseQHYCCD or until the camera vanishes; stub_open_handles() counts the handles opened
 * and not closed yet (a stale handle of a vanished camera still counts until it is closed),
 * so a caller that loses track of one shows. With QHY42_STUB_HANDLES_FILE set, the stub
 * writes that count into the file whenever it changes (for a daemon under test).
 */

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

#define QHYCCD_SUCCESS 0u
#define QHYCCD_ERROR 0xFFFFFFFFu
#define QHYCCD_DELAY_200MS 0x2000u
#define QHYCCD_READ_DIRECTLY 0x2001u

/* CONTROL_ID numbers 0..80 are the same in every SDK header (reference 1.5). */
enum {
    C_GAIN = 6, C_OFFSET = 7, C_EXPOSURE = 8, C_SPEED = 9, C_TRANSFERBIT = 10,
    C_USBTRAFFIC = 12, C_CURTEMP = 14, C_CURPWM = 15, C_MANULPWM = 16, C_COOLER = 18,
    C_BIN1 = 21, C_BIN2 = 22, C_BIN3 = 23, C_BIN4 = 24, C_TRIGER_INTERFACE = 26,
    C_8BITS = 34, C_16BITS = 35, C_GPS = 36, C_AMPV = 41, C_DDR = 48,
    C_DEFAULT_GAIN = 53, C_DEFAULT_OFFSET = 54, C_SINGLEFRAME = 57, C_LIVEVIDEO = 58,
    C_HUMIDITY = 62, C_BURST = 72,
    C_CONTROL_MAX = 96,
};

#define SENSOR_W 2048
#define SENSOR_H 2048
#define MODE_COUNT 3
#define ID_TEXT "QHY42PRO-0123456789abcdef"
#define MODEL_TEXT "QHY42PRO"
#define SECOND_ID_TEXT "QHY42PRO-fedcba9876543210"
#define MEM_LENGTH ((4096u + 100u) * (2048u + 100u) * 2u)
#define AMBIENT_C 20.0
#define TEC_MAX_DELTA_C 35.0
#define TEC_TAU_S 20.0
#define BURST_QUEUE 64

static const char *MODE_NAMES[MODE_COUNT] = {"HDR", "STD High Gain", "STD Low Gain"};
static const double LINE_PERIOD_US[3] = {40.7, 20.3, 10.2};

#define MAX_HANDLES 8
#define HANG_POLL_NS (10 * 1000 * 1000)

typedef struct {
    int magic;
    int generation;
    bool open;
} stub_handle;

static stub_handle handles[MAX_HANDLES];

/* ---- state ------------------------------------------------------------------------------ */

static struct {
    bool initialised; /* InitQHYCCDResource */
    bool init_done; /* InitQHYCCD since the last mode/stream/bits change */
    int generation; /* bumped when the camera vanishes: old handles go stale */
    bool forced_gone;
    bool seen_plugged;
    unsigned read_mode, stream_mode, bits, bin;
    unsigned roi_x, roi_y, roi_w, roi_h; /* binned pixels */
    double gain, offset, speed, traffic, exposure_us, ampv, ddr, gps, heater;
    double timeout_ms;
    /* single frame */
    bool exposing;
    unsigned exposure_count;
    double exposure_end_s, ready_s;
    /* TEC */
    int cooler_mode; /* 0 off, 1 auto, 2 manual */
    double target_c, manual_pwm, temperature_c, pwm, tec_time_s;
    /* live and burst */
    bool live, burst_enabled, idle, trigger_on;
    double live_start_s, live_interval_s, live_readout_s;
    uint32_t live_delivered; /* the last counter handed out */
    uint32_t counter_base; /* counter = base + frames since live_start */
    unsigned burst_start, burst_end;
    uint32_t patch, anti_rbi, osd;
    uint8_t registers[256];
    uint64_t noise_state;
    /* checks */
    pthread_t owner;
    bool owner_set;
    unsigned long foreign_calls, delay_violations, order_violations, opens;
    unsigned long hung_calls, param_reads;
    double delay_until_s;
} cam;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double time_scale(void) {
    const char *text = getenv("QHY42_STUB_TIME_SCALE");
    double scale = text ? atof(text) : 1.0;
    return scale > 0 ? scale : 1.0;
}

static int heater_id(void) {
    const char *text = getenv("QHY42_STUB_HEATER_ID");
    return text ? atoi(text) : 94;
}

/* Whether the hang file names this function (an empty one names GetQHYCCDParam). */
static bool hang_asked(const char *file, const char *function) {
    FILE *stream = fopen(file, "r");
    if (!stream)
        return false;
    char names[1024];
    size_t length = fread(names, 1, sizeof names - 1, stream);
    fclose(stream);
    names[length] = '\0';
    bool any = false;
    char *rest = NULL;
    for (char *name = strtok_r(names, " \t\r\n,", &rest); name;
         name = strtok_r(NULL, " \t\r\n,", &rest)) {
        any = true;
        if (strcmp(name, function) == 0)
            return true;
    }
    return !any && strcmp(function, "GetQHYCCDParam") == 0;
}

static void hang_while_asked(const char *function) {
    const char *file = getenv("QHY42_STUB_HANG_FILE");
    if (!file || !*file || !hang_asked(file, function))
        return;
    cam.hung_calls++;
    fprintf(stderr, "qhyccd_stub: %s hangs until %s is removed\n", function, file);
    struct timespec slice = {0, HANG_POLL_NS};
    while (access(file, F_OK) == 0)
        nanosleep(&slice, NULL);
    fprintf(stderr, "qhyccd_stub: %s returns\n", function);
}

static void note_thread(const char *function) {
    hang_while_asked(function);
    if (!cam.owner_set) {
        cam.owner = pthread_self();
        cam.owner_set = true;
    } else if (!pthread_equal(cam.owner, pthread_self())) {
        cam.foreign_calls++;
        fprintf(stderr, "qhyccd_stub: %s called from a second thread\n", function);
    }
    if (cam.delay_until_s > 0 && now_s() < cam.delay_until_s) {
        cam.delay_violations++;
        fprintf(stderr, "qhyccd_stub: %s within 200 ms of QHYCCD_DELAY_200MS\n", function);
    }
}

static bool plugged(void) {
    const char *file = getenv("QHY42_STUB_UNPLUGGED_FILE");
    bool here = !cam.forced_gone && !(file && *file && access(file, F_OK) == 0);
    if (!here && cam.seen_plugged) {
        cam.generation++; /* every handle opened before is stale now */
        cam.seen_plugged = false;
        cam.exposing = false;
        cam.live = false;
    } else if (here) {
        cam.seen_plugged = true;
    }
    return here;
}

static stub_handle *handle_of(void *pointer) {
    for (int i = 0; i < MAX_HANDLES; i++)
        if (pointer == &handles[i] && handles[i].magic == 0x42 && handles[i].open)
            return &handles[i];
    return NULL;
}

static bool usable(void *handle, const char *function) {
    note_thread(function);
    if (!plugged())
        return false;
    stub_handle *h = handle_of(handle);
    return h && h->generation == cam.generation;
}

static unsigned long open_handles(void) {
    unsigned long count = 0;
    for (int i = 0; i < MAX_HANDLES; i++)
        count += handles[i].open;
    return count;
}

static void report_handles(void) {
    const char *file = getenv("QHY42_STUB_HANDLES_FILE");
    if (!file || !*file)
        return;
    FILE *stream = fopen(file, "w");
    if (!stream)
        return;
    fprintf(stream, "%lu\n", open_handles());
    fclose(stream);
}

#define CAMERA(handle) \
    do { \
        if (!usable((handle), __func__)) \
            return QHYCCD_ERROR; \
    } while (0)

static unsigned mode_width(unsigned mode) { return mode == 0 ? 2 * SENSOR_W : SENSOR_W; }

static void reset_geometry(void) {
    cam.bin = 1;
    cam.bits = 16;
    cam.roi_x = cam.roi_y = 0;
    cam.roi_w = mode_width(cam.read_mode);
    cam.roi_h = SENSOR_H;
}

static void reset_camera(void) {
    cam.read_mode = 0;
    cam.stream_mode = 0;
    reset_geometry();
    cam.gain = 0; /* power-on values, not the recommended ones (DefaultGain/DefaultOffset) */
    cam.offset = 0;
    cam.speed = 1;
    cam.traffic = 30;
    cam.exposure_us = 1000;
    cam.ampv = 0;
    cam.ddr = 0;
    cam.gps = 0;
    cam.heater = 0;
    cam.timeout_ms = 60000;
    cam.exposing = false;
    cam.init_done = false;
    cam.cooler_mode = 0;
    cam.target_c = 0;
    cam.manual_pwm = 0;
    cam.pwm = 0;
    cam.live = cam.burst_enabled = cam.idle = cam.trigger_on = false;
    cam.burst_start = cam.burst_end = 0;
    cam.patch = cam.anti_rbi = cam.osd = 0;
    memset(cam.registers, 0, sizeof cam.registers);
}

/* ---- the TEC: first order toward an equilibrium set by the PWM ---------------------------- */

static void tec_advance(void) {
    double model_now = now_s() * time_scale();
    if (cam.tec_time_s == 0) {
        cam.tec_time_s = model_now;
        cam.temperature_c = AMBIENT_C;
    }
    double dt = model_now - cam.tec_time_s;
    cam.tec_time_s = model_now;
    while (dt > 0) {
        double step = dt > 0.5 ? 0.5 : dt;
        dt -= step;
        if (cam.cooler_mode == 1) {
            double hold = (AMBIENT_C - cam.target_c) / TEC_MAX_DELTA_C * 255.0;
            double pwm = hold + 60.0 * (cam.temperature_c - cam.target_c);
            cam.pwm = pwm < 0 ? 0 : pwm > 255 ? 255 : pwm;
        } else {
            cam.pwm = cam.cooler_mode == 2 ? cam.manual_pwm : 0;
        }
        double equilibrium = AMBIENT_C - TEC_MAX_DELTA_C * cam.pwm / 255.0;
        cam.temperature_c += (equilibrium - cam.temperature_c) * (1.0 - exp(-step / TEC_TAU_S));
    }
}

/* ---- the image model ---------------------------------------------------------------------- */

static double noise(void) {
    /* xorshift64*, four uniforms summed: roughly normal, sigma 1 */
    double sum = 0;
    for (int i = 0; i < 4; i++) {
        uint64_t x = cam.noise_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        cam.noise_state = x;
        sum += (double)((x * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
    }
    return (sum - 2.0) * 1.7320508;
}

static double e_per_adu(bool low_gain) {
    double high = 0.9 * pow(10.0, -cam.gain * 0.01);
    return low_gain ? 8.0 * high : high;
}

/* The mean and noise of a binned output pixel of one channel, in 12-bit ADU. */
typedef struct {
    double mean_adu, sigma_adu;
} channel_level;

static channel_level level(bool low_gain, double exposure_s) {
    double dark_e = 2.0 * pow(2.0, (cam.temperature_c - 20.0) / 6.0) * exposure_s;
    double read_e = 1.8;
    double gain = e_per_adu(low_gain);
    channel_level result = {cam.offset + dark_e / gain,
                            sqrt(read_e * read_e + dark_e) / gain / cam.bin};
    return result;
}

static void render(uint8_t *image, uint32_t *w, uint32_t *h, uint32_t *bpp, uint32_t *ch,
                   double exposure_s) {
    *w = cam.roi_w;
    *h = cam.roi_h;
    *bpp = cam.bits;
    *ch = 1;
    channel_level low = level(true, exposure_s), high = level(false, exposure_s);
    unsigned low_columns = cam.read_mode == 0 ? SENSOR_W / cam.bin : 0; /* HDR: LG left */
    for (unsigned col = 0; col < cam.roi_w; col++) {
        unsigned column = cam.roi_x + col;
        bool low_gain = cam.read_mode == 2 || column < low_columns;
        channel_level *use = low_gain ? &low : &high;
        for (unsigned row = 0; row < cam.roi_h; row++) {
            long adu = lround(use->mean_adu + use->sigma_adu * noise());
            adu = adu < 0 ? 0 : adu > 4095 ? 4095 : adu;
            size_t index = (size_t)row * cam.roi_w + col;
            if (cam.bits == 8) {
                image[index] = (uint8_t)(adu >> 4);
            } else {
                uint16_t word = (uint16_t)(adu << 4);
                memcpy(image + 2 * index, &word, 2); /* host byte order, as the SDK */
            }
        }
    }
}

static double line_period_s(void) { return LINE_PERIOD_US[(int)cam.speed] * 1e-6; }

static double quantised_exposure_s(void) {
    double period = line_period_s();
    double lines = round(cam.exposure_us * 1e-6 / period);
    return (lines < 1 ? 1 : lines) * period;
}

static double readout_time_s(void) { return cam.roi_h * cam.bin * line_period_s(); }

/* ---- lifecycle ---------------------------------------------------------------------------- */

EXPORT uint32_t InitQHYCCDResource(void) {
    note_thread(__func__);
    cam.initialised = true;
    if (!cam.noise_state)
        cam.noise_state = 0x9E3779B97F4A7C15ULL;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t ReleaseQHYCCDResource(void) {
    note_thread(__func__);
    cam.initialised = false;
    for (int i = 0; i < MAX_HANDLES; i++)
        handles[i].open = false; /* the SDK lets go of every camera */
    report_handles();
    cam.owner_set = false; /* a later InitQHYCCDResource may come from a new thread */
    return QHYCCD_SUCCESS;
}

EXPORT void SetQHYCCDAutoDetectCamera(bool enable) { (void)enable; note_thread(__func__); }
EXPORT void SetQHYCCDLogLevel(uint8_t level) { (void)level; note_thread(__func__); }
EXPORT void EnableQHYCCDMessage(bool enable) { (void)enable; note_thread(__func__); }
EXPORT void EnableQHYCCDLogFile(bool enable) { (void)enable; note_thread(__func__); }

static bool second_plugged(void) {
    const char *file = getenv("QHY42_STUB_SECOND_CAMERA_FILE");
    return file && *file && access(file, F_OK) == 0;
}

/* The ids on the bus now, in scan order: the modelled camera first, when plugged in. */
static uint32_t scanned_ids(const char *ids[2]) {
    uint32_t count = 0;
    if (plugged())
        ids[count++] = ID_TEXT;
    if (second_plugged())
        ids[count++] = SECOND_ID_TEXT;
    return count;
}

EXPORT uint32_t ScanQHYCCD(void) {
    note_thread(__func__);
    const char *ids[2];
    return cam.initialised ? scanned_ids(ids) : 0;
}

EXPORT uint32_t GetQHYCCDId(uint32_t index, char *id) {
    note_thread(__func__);
    const char *ids[2];
    if (!cam.initialised || index >= scanned_ids(ids))
        return QHYCCD_ERROR;
    strcpy(id, ids[index]);
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t GetQHYCCDModel(char *id, char *model) {
    note_thread(__func__);
    bool known = (plugged() && strcmp(id, ID_TEXT) == 0)
                 || (second_plugged() && strcmp(id, SECOND_ID_TEXT) == 0);
    if (!known)
        return QHYCCD_ERROR;
    strcpy(model, MODEL_TEXT);
    return QHYCCD_SUCCESS;
}

EXPORT void *OpenQHYCCD(char *id) {
    note_thread(__func__);
    if (cam.initialised && second_plugged() && strcmp(id, SECOND_ID_TEXT) == 0) {
        fprintf(stderr, "qhyccd_stub: OpenQHYCCD(%s): the stub models one sensor only\n", id);
        return NULL;
    }
    if (!cam.initialised || !plugged() || strcmp(id, ID_TEXT) != 0)
        return NULL;
    stub_handle *h = NULL;
    for (int i = 0; i < MAX_HANDLES && !h; i++)
        if (!handles[i].open)
            h = &handles[i];
    if (!h) {
        fprintf(stderr, "qhyccd_stub: OpenQHYCCD: %d handles open already\n", MAX_HANDLES);
        return NULL;
    }
    reset_camera();
    cam.opens++;
    h->magic = 0x42;
    h->generation = cam.generation;
    h->open = true;
    report_handles();
    return h;
}

EXPORT uint32_t CloseQHYCCD(void *handle) {
    bool valid = usable(handle, __func__);
    stub_handle *h = handle_of(handle);
    if (!h)
        return QHYCCD_ERROR;
    h->open = false; /* a stale handle is let go of too, but says so */
    report_handles();
    if (!valid)
        return QHYCCD_ERROR;
    cam.cooler_mode = 0; /* the TEC drops out when the camera is closed */
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t GetQHYCCDSDKVersion(uint32_t *y, uint32_t *m, uint32_t *d, uint32_t *sub) {
    note_thread(__func__);
    *y = 24;
    *m = 1;
    *d = 2;
    *sub = 3;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t GetQHYCCDFWVersion(void *handle, uint8_t *buf) {
    CAMERA(handle);
    buf[0] = (0x7 << 4) | 0x7; /* year nibble 7 (2023), month 7; day 15 */
    buf[1] = 15;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t GetQHYCCDFPGAVersion(void *handle, uint8_t index, uint8_t *buf) {
    CAMERA(handle);
    if (index > 1)
        return QHYCCD_ERROR;
    buf[0] = 19; /* 2019-11-18 (FPGA) and 2019-11-20 (MAX10) */
    buf[1] = 11;
    buf[2] = index == 0 ? 18 : 20;
    buf[3] = 0;
    return QHYCCD_SUCCESS;
}

/* ---- modes and init ----------------------------------------------------------------------- */

EXPORT uint32_t SetQHYCCDStreamMode(void *handle, uint8_t mode) {
    CAMERA(handle);
    if (mode > 1)
        return QHYCCD_ERROR;
    cam.stream_mode = mode;
    cam.init_done = false;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t InitQHYCCD(void *handle) {
    CAMERA(handle);
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL); /* about 2 s on a real QHY42PRO */
    reset_geometry();
    cam.init_done = true;
    cam.exposing = false;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t GetQHYCCDNumberOfReadModes(void *handle, uint32_t *count) {
    CAMERA(handle);
    *count = MODE_COUNT;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t GetQHYCCDReadModeName(void *handle, uint32_t mode, char *name) {
    CAMERA(handle);
    if (mode >= MODE_COUNT)
        return QHYCCD_ERROR;
    strcpy(name, MODE_NAMES[mode]);
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t GetQHYCCDReadModeResolution(void *handle, uint32_t mode, uint32_t *w,
                                            uint32_t *h) {
    CAMERA(handle);
    if (mode >= MODE_COUNT)
        return QHYCCD_ERROR;
    *w = mode_width(mode);
    *h = SENSOR_H;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t SetQHYCCDReadMode(void *handle, uint32_t mode) {
    CAMERA(handle);
    if (mode >= MODE_COUNT)
        return QHYCCD_ERROR;
    cam.read_mode = mode;
    cam.init_done = false;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t GetQHYCCDReadMode(void *handle, uint32_t *mode) {
    CAMERA(handle);
    *mode = cam.read_mode;
    return QHYCCD_SUCCESS;
}

/* ---- parameters --------------------------------------------------------------------------- */

typedef struct {
    int id;
    const char *name;
    double min, max, step;
} control_info;

static const control_info CONTROLS[] = {
    {C_GAIN, "CONTROL_GAIN", 0, 100, 1},
    {C_OFFSET, "CONTROL_OFFSET", 0, 255, 1},
    {C_EXPOSURE, "CONTROL_EXPOSURE", 20, 300e6, 1},
    {C_SPEED, "CONTROL_SPEED", 0, 2, 1},
    {C_TRANSFERBIT, "CONTROL_TRANSFERBIT", 8, 16, 8},
    {C_USBTRAFFIC, "CONTROL_USBTRAFFIC", 0, 60, 1},
    {C_CURTEMP, "CONTROL_CURTEMP", -50, 50, 0.1},
    {C_CURPWM, "CONTROL_CURPWM", 0, 255, 1},
    {C_MANULPWM, "CONTROL_MANULPWM", 0, 255, 1},
    {C_COOLER, "CONTROL_COOLER", -45, 20, 0.1},
    {C_BIN1, "CAM_BIN1X1MODE", 0, 0, 0},
    {C_BIN2, "CAM_BIN2X2MODE", 0, 0, 0},
    {C_BIN3, "CAM_BIN3X3MODE", 0, 0, 0},
    {C_BIN4, "CAM_BIN4X4MODE", 0, 0, 0},
    {C_TRIGER_INTERFACE, "CAM_TRIGER_INTERFACE", 0, 0, 0},
    {C_8BITS, "CAM_8BITS", 0, 0, 0},
    {C_16BITS, "CAM_16BITS", 0, 0, 0},
    {C_GPS, "CAM_GPS", 0, 1, 1},
    {C_AMPV, "CONTROL_AMPV", 0, 1, 1},
    {C_DDR, "CONTROL_DDR", 0, 1, 1},
    {C_DEFAULT_GAIN, "DefaultGain", 0, 100, 1},
    {C_DEFAULT_OFFSET, "DefaultOffset", 0, 255, 1},
    {C_SINGLEFRAME, "CAM_SINGLEFRAMEMODE", 0, 0, 0},
    {C_LIVEVIDEO, "CAM_LIVEVIDEOMODE", 0, 0, 0},
    {C_HUMIDITY, "CAM_HUMIDITY", 0, 100, 0.1},
    {C_BURST, "CAM_BURST_MODE", 0, 0, 0},
    {81, "CONTROL_FrameDetect", 0, 1, 1},
    {-1, "CONTROL_HEATINGBOARD", 0, 3, 1}, /* number: QHY42_STUB_HEATER_ID, default 94 */
};
#define CONTROL_COUNT (sizeof CONTROLS / sizeof CONTROLS[0])

static const control_info *control(int id) {
    for (size_t i = 0; i < CONTROL_COUNT; i++) {
        int number = CONTROLS[i].id < 0 ? heater_id() : CONTROLS[i].id;
        if (number == id)
            return &CONTROLS[i];
    }
    return NULL;
}

static bool is_heater(int id) { return id == heater_id(); }

EXPORT uint32_t IsQHYCCDControlAvailable(void *handle, int id) {
    CAMERA(handle);
    return control(id) ? QHYCCD_SUCCESS : QHYCCD_ERROR;
}

EXPORT uint32_t GetQHYCCDControlName(void *handle, int id, char *name) {
    CAMERA(handle);
    const control_info *info = control(id);
    if (!info)
        return QHYCCD_ERROR;
    strcpy(name, info->name);
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t GetQHYCCDParamMinMaxStep(void *handle, int id, double *min, double *max,
                                         double *step) {
    CAMERA(handle);
    const control_info *info = control(id);
    if (!info || info->step == 0)
        return QHYCCD_ERROR;
    *min = info->min;
    *max = info->max;
    *step = info->step;
    return QHYCCD_SUCCESS;
}

static bool in_range(int id, double value) {
    const control_info *info = control(id);
    return info && value >= info->min && value <= info->max;
}

EXPORT uint32_t SetQHYCCDParam(void *handle, int id, double value) {
    CAMERA(handle);
    if (!in_range(id, value))
        return QHYCCD_ERROR;
    if (is_heater(id)) {
        if (value == 1) /* EZCAP offers 0, 2 and 3 */
            return QHYCCD_ERROR;
        cam.heater = value;
        return QHYCCD_SUCCESS;
    }
    switch (id) {
    case C_GAIN: cam.gain = value; break;
    case C_OFFSET: cam.offset = value; break;
    case C_EXPOSURE: cam.exposure_us = value; break;
    case C_SPEED: cam.speed = round(value); break;
    case C_USBTRAFFIC: cam.traffic = value; break;
    case C_AMPV: cam.ampv = value; break;
    case C_DDR: cam.ddr = value; break;
    case C_GPS: cam.gps = value; break;
    case C_TRANSFERBIT: cam.bits = (unsigned)value; cam.init_done = false; break;
    case C_MANULPWM:
        tec_advance();
        cam.manual_pwm = value;
        cam.cooler_mode = value > 0 ? 2 : 0;
        break;
    case C_COOLER:
        tec_advance();
        cam.target_c = value;
        cam.cooler_mode = 1;
        break;
    default: return QHYCCD_ERROR;
    }
    return QHYCCD_SUCCESS;
}

EXPORT double GetQHYCCDParam(void *handle, int id) {
    cam.param_reads++;
    if (!usable(handle, __func__) || !control(id))
        return (double)QHYCCD_ERROR;
    if (is_heater(id))
        return cam.heater;
    switch (id) {
    case C_GAIN: return cam.gain;
    case C_OFFSET: return cam.offset;
    case C_EXPOSURE: return cam.exposure_us;
    case C_SPEED: return cam.speed;
    case C_USBTRAFFIC: return cam.traffic;
    case C_AMPV: return cam.ampv;
    case C_DDR: return cam.ddr;
    case C_GPS: return cam.gps;
    case C_TRANSFERBIT: return cam.bits;
    case C_CURTEMP: tec_advance(); return round(cam.temperature_c * 10.0) / 10.0;
    case C_CURPWM: tec_advance(); return round(cam.pwm);
    case C_MANULPWM: return cam.manual_pwm;
    case C_COOLER: return cam.target_c;
    case C_DEFAULT_GAIN: return 10;
    case C_DEFAULT_OFFSET: return 140;
    case C_HUMIDITY: return 12.5;
    default: return (double)QHYCCD_ERROR;
    }
}

/* ---- geometry ----------------------------------------------------------------------------- */

EXPORT uint32_t GetQHYCCDChipInfo(void *handle, double *chip_w_mm, double *chip_h_mm,
                                  uint32_t *image_w, uint32_t *image_h, double *pixel_w_um,
                                  double *pixel_h_um, uint32_t *bpp) {
    CAMERA(handle);
    *image_w = mode_width(cam.read_mode);
    *image_h = SENSOR_H;
    *pixel_w_um = *pixel_h_um = 11.0;
    *chip_w_mm = *image_w * 0.011;
    *chip_h_mm = *image_h * 0.011;
    *bpp = cam.bits;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t GetQHYCCDEffectiveArea(void *handle, uint32_t *x, uint32_t *y, uint32_t *w,
                                       uint32_t *h) {
    CAMERA(handle);
    *x = 0;
    *y = 0;
    *w = mode_width(cam.read_mode);
    *h = SENSOR_H;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t GetQHYCCDOverScanArea(void *handle, uint32_t *x, uint32_t *y, uint32_t *w,
                                      uint32_t *h) {
    CAMERA(handle);
    *x = *y = *w = *h = 0;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t SetQHYCCDBinMode(void *handle, uint32_t wbin, uint32_t hbin) {
    CAMERA(handle);
    if (wbin != hbin || wbin < 1 || wbin > 4)
        return QHYCCD_ERROR;
    bool changed = wbin != cam.bin;
    cam.bin = wbin;
    cam.roi_x = cam.roi_y = 0;
    cam.roi_w = mode_width(cam.read_mode) / wbin;
    cam.roi_h = SENSOR_H / wbin;
    if (changed) {
        cam.delay_until_s = now_s() + 0.2;
        return QHYCCD_DELAY_200MS;
    }
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t SetQHYCCDResolution(void *handle, uint32_t x, uint32_t y, uint32_t w,
                                    uint32_t h) {
    CAMERA(handle);
    unsigned max_w = mode_width(cam.read_mode) / cam.bin, max_h = SENSOR_H / cam.bin;
    if (w == 0 || h == 0 || x + w > max_w || y + h > max_h)
        return QHYCCD_ERROR;
    cam.roi_x = x;
    cam.roi_y = y;
    cam.roi_w = w;
    cam.roi_h = h;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t SetQHYCCDBitsMode(void *handle, uint32_t bits) {
    CAMERA(handle);
    if (bits != 8 && bits != 16)
        return QHYCCD_ERROR;
    cam.bits = bits;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t GetQHYCCDMemLength(void *handle) {
    if (!usable(handle, __func__))
        return 0;
    return MEM_LENGTH;
}

/* ---- single frame ------------------------------------------------------------------------- */

EXPORT uint32_t ExpQHYCCDSingleFrame(void *handle) {
    CAMERA(handle);
    if (!cam.init_done || cam.stream_mode != 0) {
        cam.order_violations++;
        fprintf(stderr, "qhyccd_stub: exposure without InitQHYCCD after a mode change\n");
        return QHYCCD_ERROR;
    }
    tec_advance();
    double start = now_s();
    cam.exposing = true;
    cam.exposure_end_s = start + quantised_exposure_s();
    cam.ready_s = cam.exposure_end_s + readout_time_s();
    cam.exposure_count++;
    /* Some SDK builds answer READ_DIRECTLY (success); every other exposure does here. */
    return cam.exposure_count % 2 ? QHYCCD_READ_DIRECTLY : QHYCCD_SUCCESS;
}

EXPORT uint32_t SetQHYCCDSingleFrameTimeOut(void *handle, uint32_t ms) {
    CAMERA(handle);
    cam.timeout_ms = ms;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t GetQHYCCDSingleFrame(void *handle, uint32_t *w, uint32_t *h, uint32_t *bpp,
                                     uint32_t *channels, uint8_t *image) {
    CAMERA(handle);
    if (!cam.exposing)
        return QHYCCD_ERROR;
    double called = now_s();
    /* Blocks until the exposure has ended and the frame is read out, as the SDK does. */
    while (now_s() < cam.ready_s) {
        if (!plugged())
            return QHYCCD_ERROR; /* the camera vanished mid-exposure */
        if (cam.timeout_ms > 0 && (now_s() - called) * 1000.0 > cam.timeout_ms) {
            cam.exposing = false;
            return QHYCCD_ERROR;
        }
        struct timespec slice = {0, 2 * 1000 * 1000};
        nanosleep(&slice, NULL);
    }
    cam.exposing = false;
    tec_advance();
    render(image, w, h, bpp, channels, quantised_exposure_s());
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t CancelQHYCCDExposingAndReadout(void *handle) {
    CAMERA(handle);
    cam.exposing = false;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t GetQHYCCDPreciseExposureInfo(void *handle, uint32_t *pixel_period_ps,
                                             uint32_t *line_period_ns, uint32_t *frame_period_us,
                                             uint32_t *clocks_per_line, uint32_t *lines_per_frame,
                                             uint32_t *actual_exposure_us,
                                             uint8_t *is_long_exposure) {
    CAMERA(handle);
    double line_ns = line_period_s() * 1e9;
    *line_period_ns = (uint32_t)lround(line_ns);
    *clocks_per_line = 2200;
    *pixel_period_ps = (uint32_t)lround(line_ns * 1000.0 / *clocks_per_line);
    *lines_per_frame = cam.roi_h * cam.bin + 16;
    *frame_period_us = (uint32_t)lround(*lines_per_frame * line_ns / 1000.0);
    *actual_exposure_us = (uint32_t)lround(quantised_exposure_s() * 1e6);
    *is_long_exposure = *actual_exposure_us > *frame_period_us;
    return QHYCCD_SUCCESS;
}

/* ---- cooling ------------------------------------------------------------------------------ */

EXPORT uint32_t ControlQHYCCDTemp(void *handle, double target_c) {
    CAMERA(handle);
    if (!in_range(C_COOLER, target_c))
        return QHYCCD_ERROR;
    tec_advance();
    cam.target_c = target_c;
    cam.cooler_mode = 1;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t GetQHYCCDHumidity(void *handle, double *rh) {
    CAMERA(handle);
    *rh = 12.5;
    return QHYCCD_SUCCESS;
}

/* ---- registers ---------------------------------------------------------------------------- */

EXPORT uint32_t SetQHYCCDWriteFPGA(void *handle, uint8_t number, uint8_t reg, uint8_t value) {
    CAMERA(handle);
    if (number != 0)
        return QHYCCD_ERROR;
    cam.registers[reg] = value;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t QHYCCDVendRequestRead(void *handle, uint8_t request, uint16_t value,
                                      uint16_t index, uint32_t length, uint8_t *data) {
    CAMERA(handle);
    (void)value;
    if (request != 0xBC || length != 1 || index > 0xFF)
        return QHYCCD_ERROR;
    data[0] = cam.registers[index];
    return QHYCCD_SUCCESS;
}

/* ---- trigger ------------------------------------------------------------------------------ */

EXPORT uint32_t SetQHYCCDTrigerFunction(void *handle, bool on) {
    CAMERA(handle);
    cam.trigger_on = on;
    return QHYCCD_SUCCESS;
}

/* ---- live and burst ----------------------------------------------------------------------- */

static uint32_t live_frames_done(double at_s) {
    if (at_s < cam.live_start_s + cam.live_interval_s)
        return 0;
    return (uint32_t)((at_s - cam.live_start_s) / cam.live_interval_s);
}

EXPORT uint32_t BeginQHYCCDLive(void *handle) {
    CAMERA(handle);
    if (cam.stream_mode != 1 || !cam.init_done) {
        cam.order_violations++;
        return QHYCCD_ERROR;
    }
    double exposure = quantised_exposure_s(), readout = readout_time_s();
    cam.live = true;
    cam.idle = false;
    cam.live_start_s = now_s();
    cam.live_interval_s = exposure > readout ? exposure : readout;
    cam.live_readout_s = readout;
    cam.counter_base = 0;
    cam.live_delivered = 0;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t StopQHYCCDLive(void *handle) {
    CAMERA(handle);
    cam.live = false;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t GetQHYCCDLiveFrame(void *handle, uint32_t *w, uint32_t *h, uint32_t *bpp,
                                   uint32_t *channels, uint8_t *image) {
    CAMERA(handle);
    if (!cam.live || cam.idle)
        return QHYCCD_ERROR;
    uint32_t newest = cam.counter_base + live_frames_done(now_s());
    uint32_t next;
    if (cam.burst_enabled) {
        /* burst frames stay in the camera until read, and only start < n < end leave it */
        next = cam.live_delivered + 1;
        if (next <= cam.burst_start)
            next = cam.burst_start + 1;
        if (next >= cam.burst_end || next > newest)
            return QHYCCD_ERROR;
    } else {
        if (newest <= cam.live_delivered)
            return QHYCCD_ERROR; /* no frame ready: poll again */
        next = newest; /* a slow reader misses frames */
    }
    cam.live_delivered = next;
    tec_advance();
    render(image, w, h, bpp, channels, quantised_exposure_s());
    uint8_t head[4] = {next >> 24, next >> 16, next >> 8, next};
    memcpy(image, head, 4);
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t EnableQHYCCDBurstMode(void *handle, bool on) {
    CAMERA(handle);
    cam.burst_enabled = on;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t EnableQHYCCDBurstCountFun(void *handle, bool on) {
    CAMERA(handle);
    (void)on;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t SetQHYCCDBurstModeStartEnd(void *handle, unsigned short start,
                                           unsigned short end) {
    CAMERA(handle);
    cam.burst_start = start;
    cam.burst_end = end;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t SetQHYCCDBurstIDLE(void *handle) {
    CAMERA(handle);
    cam.idle = true;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t ReleaseQHYCCDBurstIDLE(void *handle) {
    CAMERA(handle);
    cam.idle = false;
    cam.live_start_s = now_s(); /* the sequence restarts at number 1 */
    cam.counter_base = 0;
    cam.live_delivered = 0;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t SetQHYCCDBurstModePatchNumber(void *handle, uint32_t patch) {
    CAMERA(handle);
    cam.patch = patch;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t ResetQHYCCDFrameCounter(void *handle) {
    CAMERA(handle);
    cam.live_start_s = now_s();
    cam.counter_base = 0;
    cam.live_delivered = 0;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t SetQHYCCDEnableLiveModeAntiRBI(void *handle, uint32_t on) {
    CAMERA(handle);
    cam.anti_rbi = on;
    return QHYCCD_SUCCESS;
}

EXPORT uint32_t EnableQHYCCDImageOSD(void *handle, uint32_t on) {
    CAMERA(handle);
    cam.osd = on;
    return QHYCCD_SUCCESS;
}

/* ---- test hooks (not part of libqhyccd) --------------------------------------------------- */

EXPORT void stub_vanish(void) { cam.forced_gone = true; }
EXPORT void stub_return(void) { cam.forced_gone = false; }
EXPORT unsigned long stub_foreign_thread_calls(void) { return cam.foreign_calls; }
EXPORT unsigned long stub_delay_violations(void) { return cam.delay_violations; }
EXPORT unsigned long stub_order_violations(void) { return cam.order_violations; }
EXPORT unsigned long stub_opens(void) { return cam.opens; }
EXPORT unsigned long stub_open_handles(void) { return open_handles(); }
EXPORT unsigned long stub_hung_calls(void) { return cam.hung_calls; }
EXPORT unsigned long stub_param_reads(void) { return cam.param_reads; }
EXPORT double stub_heater_level(void) { return cam.heater; }
EXPORT double stub_param_ddr(void) { return cam.ddr; }
EXPORT double stub_param_gps(void) { return cam.gps; }
EXPORT int stub_trigger_on(void) { return cam.trigger_on; }
EXPORT void stub_roi(uint32_t out[5]) {
    out[0] = cam.roi_x;
    out[1] = cam.roi_y;
    out[2] = cam.roi_w;
    out[3] = cam.roi_h;
    out[4] = cam.bin;
}
