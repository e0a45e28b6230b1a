// indi_capture_client: takes exposures from an INDI camera through libindiclient
// (INDI::BaseClient, the library KStars uses), so tests can prove that the real client
// library works with a server.
//
//   indi_capture_client --host H --port P --device NAME --exposure SECONDS [--count N]
//       [--out DIR] [--blob-mode only|also] [--timeout S] [--set PROP.ELEM=VALUE ...]
//
// stdout, one line per event, flushed as it happens:
//   EXPOSURE state=Busy value=1.5      every CCD_EXPOSURE update the library delivers
//   FRAME index=1 size=... format=.fits bloblen=... file=DIR/frame_1.fits   (file= is last)
//   DONE frames=N
// Exit status: 0 ok, 1 other failure, 2 usage, 3 timeout, 4 server disconnected,
// 5 CCD_EXPOSURE went Alert. The reason is printed on stderr.
//
// --blob-mode only (default) copies KStars: a control connection that asks for no BLOBs
// and a second connection with enableBLOB Only for CCD1. In that mode EXPOSURE and FRAME
// lines come from two sockets, so their relative order is not the wire order; with
// --blob-mode also everything arrives on one socket and stdout shows the wire order.
// --timeout bounds the whole run. --host localhost:/path is handed to setServer as is:
// libindiclient 1.9.9 then connects to the Unix socket at that path (indiserver -u).

#include <libindi/baseclient.h>
#include <libindi/basedevice.h>
#include <libindi/indipropertynumber.h>
#include <libindi/indipropertyswitch.h>
#include <libindi/indipropertytext.h>
#include <libindi/indipropertyblob.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace
{

using Clock = std::chrono::steady_clock;

enum Exit { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_TIMEOUT = 3, EXIT_DISCONNECTED = 4, EXIT_ALERT = 5 };

struct Options
{
    std::string host, device, outDir = ".", blobMode = "only";
    unsigned port = 7624;
    double exposure = -1, timeout = 60;
    int count = 1;
    std::vector<std::string> sets;
};

// Both connections report into one place, so the main thread can wait on a single condition.
struct Shared
{
    std::mutex mutex;
    std::condition_variable changed;
    int framesReceived = 0;
    int okUpdatesSinceRequest = 0;
    bool exposureRequested = false;
    bool pingReplied = false;
    bool finishing = false;
    int failCode = EXIT_OK;
    std::string failReason;
    Options opt;

    void fail(int code, const std::string &reason)
    {
        std::lock_guard<std::mutex> lock(mutex);
        if (failCode == EXIT_OK && !finishing)
        {
            failCode = code;
            failReason = reason;
        }
        changed.notify_all();
    }
};

std::mutex stdoutMutex;

void emit(const std::string &line)
{
    std::lock_guard<std::mutex> lock(stdoutMutex);
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
}

class Client : public INDI::BaseClient
{
    public:
        Client(Shared &shared, std::string role, bool reportExposure, bool takeBlobs)
            : shared(shared), role(std::move(role)), reportExposure(reportExposure), takeBlobs(takeBlobs) {}

    protected:
        // libindi 1.9.9 calls both the Property-based callbacks used here and the deprecated
        // newNumber/newBLOB ones; the Property-based ones also exist in libindi 2.x.
        void newProperty(INDI::Property) override
        {
            shared.changed.notify_all();
        }

        void updateProperty(INDI::Property property) override
        {
            if (shared.opt.device != property.getDeviceName())
                return;
            if (reportExposure && property.isNameMatch("CCD_EXPOSURE"))
                onExposure(INDI::PropertyNumber(property));
            else if (takeBlobs && property.isNameMatch("CCD1"))
                onBlob(INDI::PropertyBlob(property));
            shared.changed.notify_all();
        }

        void serverDisconnected(int exitCode) override
        {
            shared.fail(EXIT_DISCONNECTED, role + " connection to the server was lost (exit code " + std::to_string(exitCode) + ")");
        }

        void newPingReply(std::string) override
        {
            std::lock_guard<std::mutex> lock(shared.mutex);
            shared.pingReplied = true;
            shared.changed.notify_all();
        }

    private:
        void onExposure(const INDI::PropertyNumber &exposure)
        {
            auto *value = exposure.findWidgetByName("CCD_EXPOSURE_VALUE");
            char line[128];
            std::snprintf(line, sizeof line, "EXPOSURE state=%s value=%g", exposure.getStateAsString(), value ? value->getValue() : -1.0);
            emit(line);

            std::lock_guard<std::mutex> lock(shared.mutex);
            if (!shared.exposureRequested)
                return;  // a state left over from before this run is not ours to judge
            if (exposure.getState() == IPS_ALERT && shared.failCode == EXIT_OK)
            {
                shared.failCode = EXIT_ALERT;
                shared.failReason = "CCD_EXPOSURE went Alert";
            }
            else if (exposure.getState() == IPS_OK)
                ++shared.okUpdatesSinceRequest;
        }

        void onBlob(const INDI::PropertyBlob &blobs)
        {
            for (const auto &blob : blobs)
            {
                // size 0 is a state-only update without data (protocol reference 1.6)
                if (!blob.isNameMatch("CCD1") || blob.getSize() == 0 || blob.getBlobLen() == 0)
                    continue;
                std::string format = blob.getFormat();
                if (format.find('/') != std::string::npos)
                {
                    shared.fail(EXIT_FAIL, "refusing BLOB format with a path separator: " + format);
                    return;
                }
                int index;
                {
                    std::lock_guard<std::mutex> lock(shared.mutex);
                    index = shared.framesReceived + 1;
                }
                auto file = std::filesystem::path(shared.opt.outDir) / ("frame_" + std::to_string(index) + format);
                std::ofstream out(file, std::ios::binary | std::ios::trunc);
                out.write(static_cast<const char *>(blob.getBlob()), blob.getBlobLen());
                out.close();
                if (!out)
                {
                    shared.fail(EXIT_FAIL, "cannot write " + file.string());
                    return;
                }
                // The file is complete before anyone reading stdout learns about it.
                emit("FRAME index=" + std::to_string(index) + " size=" + std::to_string(blob.getSize()) + " format=" + format +
                     " bloblen=" + std::to_string(blob.getBlobLen()) + " file=" + file.string());
                std::lock_guard<std::mutex> lock(shared.mutex);
                shared.framesReceived = index;
            }
        }

        Shared &shared;
        std::string role;
        bool reportExposure, takeBlobs;
};

[[noreturn]] void usage(const std::string &why)
{
    std::fprintf(stderr, "indi_capture_client: %s\n"
                 "usage: indi_capture_client --host H --port P --device NAME --exposure SECONDS [--count N]\n"
                 "       [--out DIR] [--blob-mode only|also] [--timeout S] [--set PROP.ELEM=VALUE ...]\n", why.c_str());
    std::exit(EXIT_USAGE);
}

Options parseArgs(int argc, char **argv)
{
    Options opt;
    for (int i = 1; i < argc; ++i)
    {
        std::string arg = argv[i];
        if (i + 1 >= argc)
            usage("missing value for " + arg);
        std::string value = argv[++i];
        try
        {
            if (arg == "--host") opt.host = value;
            else if (arg == "--port") opt.port = static_cast<unsigned>(std::stoul(value));
            else if (arg == "--device") opt.device = value;
            else if (arg == "--exposure") opt.exposure = std::stod(value);
            else if (arg == "--count") opt.count = std::stoi(value);
            else if (arg == "--out") opt.outDir = value;
            else if (arg == "--blob-mode") opt.blobMode = value;
            else if (arg == "--timeout") opt.timeout = std::stod(value);
            else if (arg == "--set") opt.sets.push_back(value);
            else usage("unknown option " + arg);
        }
        catch (const std::logic_error &)
        {
            usage("bad value for " + arg + ": " + value);
        }
    }
    if (opt.host.empty() || opt.device.empty() || opt.exposure < 0)
        usage("--host, --device and --exposure are required");
    if (opt.blobMode != "only" && opt.blobMode != "also")
        usage("--blob-mode must be only or also");
    if (opt.count < 1 || opt.timeout <= 0)
        usage("--count and --timeout must be positive");
    return opt;
}

class Run
{
    public:
        explicit Run(Options opt) : deadline(Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.timeout)))
        {
            shared.opt = std::move(opt);
        }

        int execute()
        {
            const Options &opt = shared.opt;
            std::error_code ec;
            std::filesystem::create_directories(opt.outDir, ec);
            if (ec)
                return fail(EXIT_FAIL, "cannot create " + opt.outDir + ": " + ec.message());

            bool single = opt.blobMode == "also";
            control = std::make_unique<Client>(shared, "control", true, single);
            if (!connect(*control))
                return finish();

            if (!waitFor("device " + opt.device + " (CONNECTION)", [&] { return hasProperty(*control, "CONNECTION"); }))
                return finish();
            // KStars' main connection never takes BLOBs; its BLOB connection does.
            control->setBLOBMode(single ? B_ALSO : B_NEVER, opt.device.c_str(), single ? "CCD1" : nullptr);

            if (!control->getDevice(opt.device.c_str()).isConnected())
                control->connectDevice(opt.device.c_str());
            if (!waitFor("device connected and CCD_EXPOSURE, CCD1 defined", [&]
                {
                    return control->getDevice(opt.device.c_str()).isConnected()
                           && hasProperty(*control, "CCD_EXPOSURE") && hasProperty(*control, "CCD1");
                }))
                return finish();

            if (!single && !openBlobConnection())
                return finish();
            if (!applySets())
                return finish();

            for (int i = 1; i <= opt.count; ++i)
            {
                {
                    std::lock_guard<std::mutex> lock(shared.mutex);
                    shared.exposureRequested = true;
                    shared.okUpdatesSinceRequest = 0;
                }
                auto exposure = control->getDevice(opt.device.c_str()).getNumber("CCD_EXPOSURE");
                auto *value = exposure.findWidgetByName("CCD_EXPOSURE_VALUE");
                if (!value)
                    return fail(EXIT_FAIL, "CCD_EXPOSURE has no CCD_EXPOSURE_VALUE element");
                value->setValue(opt.exposure);
                control->sendNewNumber(exposure);
                // Drivers send the BLOB before the Ok; either may come first across two sockets.
                if (!waitForLocked("frame " + std::to_string(i) + " (BLOB and CCD_EXPOSURE Ok)", [&]
                    { return shared.framesReceived >= i && shared.okUpdatesSinceRequest > 0; }))
                    return finish();
            }

            {
                std::lock_guard<std::mutex> lock(shared.mutex);
                shared.finishing = true;
                emit("DONE frames=" + std::to_string(shared.framesReceived));
            }
            return finish();
        }

    private:
        bool connect(Client &client)
        {
            const Options &opt = shared.opt;
            client.setServer(opt.host.c_str(), opt.port);
            client.setConnectionTimeout(5, 0);
            client.watchDevice(opt.device.c_str());
            if (client.connectServer())
                return true;
            // libindi also reports a failed connect through serverDisconnected; say what happened.
            std::lock_guard<std::mutex> lock(shared.mutex);
            shared.failCode = EXIT_FAIL;
            shared.failReason = "cannot connect to " + opt.host + " port " + std::to_string(opt.port);
            return false;
        }

        bool hasProperty(Client &client, const char *name)
        {
            auto device = client.getDevice(shared.opt.device.c_str());
            return device.isValid() && device.getProperty(name).isValid();
        }

        // The second connection, as KStars' BlobManager opens it once CCD1 is defined.
        bool openBlobConnection()
        {
            const Options &opt = shared.opt;
            blob = std::make_unique<Client>(shared, "BLOB", false, true);
            if (!connect(*blob))
                return false;
            if (!waitFor("CCD1 on the BLOB connection", [&] { return hasProperty(*blob, "CCD1"); }))
                return false;

            blob->setBLOBMode(B_ONLY, opt.device.c_str(), "CCD1");
            // The exposure is requested on the other socket, so make sure the server has taken
            // the enableBLOB first; a pingReply proves it (it is answered in order).
            // A server without ping support only costs a few seconds here.
            blob->sendPingRequest("indi_capture_client/enableBLOB");
            std::unique_lock<std::mutex> lock(shared.mutex);
            auto pingDeadline = std::min(deadline, Clock::now() + std::chrono::seconds(5));
            if (!shared.changed.wait_until(lock, pingDeadline, [&] { return shared.pingReplied || shared.failCode != EXIT_OK; }))
                std::fprintf(stderr, "indi_capture_client: no pingReply on the BLOB connection; continuing\n");
            return shared.failCode == EXIT_OK;
        }

        // --set PROP.ELEM=VALUE: numbers take the value, switches turn the named element On,
        // texts take the string. The whole vector is sent, as KStars does (CCD_FRAME needs it).
        bool applySets()
        {
            std::map<std::string, std::vector<std::pair<std::string, std::string>>> byProperty;
            std::vector<std::string> order;
            for (const auto &set : shared.opt.sets)
            {
                auto dot = set.find('.'), eq = set.find('=');
                if (dot == std::string::npos || eq == std::string::npos || eq < dot)
                    return error(EXIT_USAGE, "--set wants PROP.ELEM=VALUE, got " + set);
                std::string prop = set.substr(0, dot);
                if (!byProperty.count(prop))
                    order.push_back(prop);
                byProperty[prop].emplace_back(set.substr(dot + 1, eq - dot - 1), set.substr(eq + 1));
            }

            auto device = control->getDevice(shared.opt.device.c_str());
            for (const auto &name : order)
            {
                INDI::Property property = device.getProperty(name.c_str());
                if (!property.isValid())
                    return error(EXIT_FAIL, "property " + name + " is not defined by " + shared.opt.device);
                for (const auto &[element, value] : byProperty[name])
                {
                    bool found = false;
                    if (property.getType() == INDI_NUMBER)
                    {
                        INDI::PropertyNumber number(property);
                        if (auto *w = number.findWidgetByName(element.c_str()))
                            w->setValue(std::strtod(value.c_str(), nullptr)), found = true;
                    }
                    else if (property.getType() == INDI_SWITCH)
                    {
                        INDI::PropertySwitch sw(property);
                        if (sw.findWidgetByName(element.c_str()))
                        {
                            if (sw.getRule() != ISR_NOFMANY)
                                sw.reset();
                            sw.findWidgetByName(element.c_str())->setState(value == "Off" ? ISS_OFF : ISS_ON);
                            found = true;
                        }
                    }
                    else if (property.getType() == INDI_TEXT)
                    {
                        INDI::PropertyText text(property);
                        if (auto *w = text.findWidgetByName(element.c_str()))
                            w->setText(value.c_str()), found = true;
                    }
                    if (!found)
                        return error(EXIT_FAIL, "no settable element " + name + "." + element);
                }
                control->sendNewProperty(property);
            }
            return true;
        }

        // ready() reads the library's device tree, which the library's thread changes without
        // our mutex, so a notification can slip past; polling every 50 ms makes that harmless.
        bool waitFor(const std::string &what, const std::function<bool()> &ready)
        {
            std::unique_lock<std::mutex> lock(shared.mutex);
            while (shared.failCode == EXIT_OK)
            {
                lock.unlock();
                bool done = ready();
                lock.lock();
                if (done || Clock::now() >= deadline)
                    return settle(done, what);
                shared.changed.wait_until(lock, std::min(deadline, Clock::now() + std::chrono::milliseconds(50)));
            }
            return settle(false, what);
        }

        bool waitForLocked(const std::string &what, const std::function<bool()> &ready)
        {
            std::unique_lock<std::mutex> lock(shared.mutex);
            bool ok = shared.changed.wait_until(lock, deadline, [&] { return shared.failCode != EXIT_OK || ready(); });
            return settle(ok, what);
        }

        // Called with shared.mutex held.
        bool settle(bool ok, const std::string &what)
        {
            if (shared.failCode != EXIT_OK)
                return false;
            if (!ok)
            {
                shared.failCode = EXIT_TIMEOUT;
                char seconds[32];
                std::snprintf(seconds, sizeof seconds, "%g", shared.opt.timeout);
                shared.failReason = std::string("timed out after ") + seconds + " s waiting for " + what;
                return false;
            }
            return true;
        }

        bool error(int code, const std::string &reason)
        {
            shared.fail(code, reason);
            return false;
        }

        int fail(int code, const std::string &reason)
        {
            shared.fail(code, reason);
            return finish();
        }

        int finish()
        {
            {
                std::lock_guard<std::mutex> lock(shared.mutex);
                shared.finishing = true;
            }
            for (auto *client : {blob.get(), control.get()})
                if (client && client->isServerConnected())
                    client->disconnectServer();
            if (shared.failCode != EXIT_OK)
                std::fprintf(stderr, "indi_capture_client: %s\n", shared.failReason.c_str());
            return shared.failCode;
        }

        Clock::time_point deadline;
        Shared shared;
        std::unique_ptr<Client> control, blob;
};

}

int main(int argc, char **argv)
{
    Run run(parseArgs(argc, argv));
    return run.execute();
}
