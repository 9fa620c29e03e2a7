// Compiled together with the generated bindings and run on the JVM (JNA loads the library), as an
// Android app would use them: proves the generated Kotlin compiles and works against the library.
import java.util.concurrent.CountDownLatch
import kotlinx.coroutines.runBlocking
import no.omsyn.mobile.*

fun main(args: Array<String>) = runBlocking {
    val dir = args[0]
    val key = ByteArray(32) { (it * 7).toByte() } // an app takes this from the Android Keystore
    val node = OmsynNode.create(dir, key, NodeSetup(NodeRole.NURSE, "Kari Nordmann", "S1", null, "Sone 1"))
    check(node.id().length == 64) { "node id ${node.id()}" }
    check(node.info().role == NodeRole.NURSE)
    check(node.workList("2026-11-22").isEmpty())
    check(node.enrollmentRequest().startsWith("omsyn-enroll1:"))

    // Errors arrive as the sealed OmsynException with a clear message.
    try {
        node.patientRecord("p-0123456789abcdef")
        error("a patient with no need must be refused")
    } catch (e: OmsynException.AccessDenied) {
        check(e.message!!.contains("need")) { e.message!! }
    }
    try {
        node.addNote("not an id", null, "x", null)
        error("a malformed id must be refused")
    } catch (e: OmsynException.InvalidInput) {}

    // Sync starts and stops; the listener is a Kotlin object.
    val events = CountDownLatch(0)
    node.setListener(object : NodeListener {
        override fun onEvent(event: NodeEvent) { events.countDown() }
    })
    val ticket = node.startSync(SyncOptions("127.0.0.1:0", null, emptyList(), false))
    check(ticket.startsWith("omsyn1:")) { ticket }
    check(node.syncStatus().running)
    node.stopSync()
    node.shutdown()
    node.close()

    try {
        OmsynNode.open(dir, ByteArray(32))
        error("a wrong key must be refused")
    } catch (e: OmsynException.WrongKey) {}
    val reopened = OmsynNode.open(dir, key)
    println("kotlin smoke: ok (node ${reopened.id().take(8)})")
}
